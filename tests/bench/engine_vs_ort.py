"""FP32 inference speed: qtune against ONNX Runtime, same machine, same thread count, same run.

Usage: python3 tests/bench/engine_vs_ort.py [--threads 2] [--runs 20] [--rounds 3]
                                           [--qtune target/release/qtune] [--isa avx512,avx2]
                                           [--case resnet50 …] [--check]
Needs: pip install onnxruntime numpy   (ONNX Runtime is only the yardstick, never a dependency)

Cases: the PP-OCR classifier (batch 16 and 1), the PP-OCR detector at 480² and 960², and every
light model in tests/fixtures/models. Both engines get the same input tensor (the committed
reference inputs; a fixed pseudo-random one for the detector at 960²) and the same thread count.
Runs are interleaved: each of `--rounds` rounds times ORT, then qtune under each ISA of `--isa`
(QTUNE_ISA), `--runs` runs each after one warm-up (load time not counted); the medians and minima
are over all rounds. Prints the CPU flags and load first, then per case and ISA the min and median
ms of each engine and the ratio qtune / ORT of the medians and of the minima (lower is better),
with the ISA qtune reports it ran. `--check` also compares qtune's outputs with ORT's
(tolerance 1e-4 · max(1, max |ORT|), as tests/reference.rs). Run it more than once: on a shared
machine the noise is large.
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, 'tests', 'fixtures')
REF = os.path.join(FIX, 'reference')
CLS = os.path.join(ROOT, 'assets/demo/ppocr-cls.onnx')
DET = os.path.join(ROOT, 'assets/det/ppocr-det.onnx')
LIGHT = ['resnet50', 'bvlc_alexnet', 'densenet121', 'inception_v1', 'inception_v2', 'shufflenet',
         'squeezenet', 'vgg19', 'zfnet512']
# (name, model, input: .npy path or a shape for a fixed pseudo-random tensor, leading samples to keep)
CASES = [
    ('ppocr-cls 16x3x48x192', CLS, os.path.join(REF, 'ppocr-cls_input.npy'), None),
    ('ppocr-cls 1x3x48x192', CLS, os.path.join(REF, 'ppocr-cls_input.npy'), 1),
    ('ppocr-det 1x3x480x480', DET, os.path.join(REF, 'ppocr-det_input.npy'), None),
    ('ppocr-det 1x3x960x960', DET, (1, 3, 960, 960), None),
] + [(f'{m} 1x3x224x224', os.path.join(FIX, f'models/{m}.onnx'), os.path.join(REF, f'light-{m}_input.npy'), None)
     for m in LIGHT]


def cpu_flags():
    """The x86 SIMD flags of this CPU that matter to the kernels (from /proc/cpuinfo)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = line.split(':', 1)[1].split()
                    keep = [x for x in flags if x.startswith(('avx', 'fma', 'amx', 'f16c'))]
                    return ' '.join(keep)
    except OSError:
        pass
    return 'unknown'


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown CPU'


def ort_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=['CPUExecutionProvider'])


def ort_times(s, x, runs):
    feed = {s.get_inputs()[0].name: x}
    s.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return times


def qtune_times(exe, model, xpath, threads, runs, isa):
    env = dict(os.environ)
    if isa != 'auto':
        env['QTUNE_ISA'] = isa
    out = subprocess.run([exe, '--threads', str(threads), 'bench', model, '--input', xpath, '--runs', str(runs),
                          '--json'], check=True, capture_output=True, text=True, env=env).stdout
    r = json.loads(out)
    return r['times_ms'], r.get('isa', '?')


def check_outputs(exe, model, xpath, outs, threads, isa, tmp):
    env = dict(os.environ)
    if isa != 'auto':
        env['QTUNE_ISA'] = isa
    d = os.path.join(tmp, 'out')
    os.makedirs(d, exist_ok=True)
    subprocess.run([exe, '--threads', str(threads), 'infer', model, '--input', xpath, '--out', d],
                   check=True, capture_output=True, env=env)
    worst = 0.0
    for k, want in enumerate(outs):
        got = np.load(os.path.join(d, f'output_{k}.npy'))
        tol = 1e-4 * max(1.0, float(np.abs(want).max()))
        worst = max(worst, float(np.abs(got.astype(np.float64) - want).max()) / tol)
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--runs', type=int, default=20, help='timed runs per engine per round')
    ap.add_argument('--rounds', type=int, default=3, help='interleaved rounds (ORT, then qtune)')
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    ap.add_argument('--isa', default='auto', help='comma-separated QTUNE_ISA values to time (auto = the default choice)')
    ap.add_argument('--case', action='append', default=[], help='only cases whose name contains this')
    ap.add_argument('--check', action='store_true', help="also check qtune's outputs against ORT's")
    a = ap.parse_args()
    isas = a.isa.split(',')
    print(f'{cpu_model()}; {os.cpu_count()} logical CPUs; flags: {cpu_flags()}')
    print(f'onnxruntime {ort.__version__}, {a.threads} threads, {a.rounds} interleaved rounds of {a.runs} timed runs '
          f'after 1 warm-up; load avg {os.getloadavg()[0]:.2f} at start')
    hdr = f'{"case":<26} {"isa":<7} {"qtune min":>9} {"qtune med":>9} {"ORT min":>8} {"ORT med":>8} {"ratio med":>9} {"ratio min":>9}'
    print(hdr + ('  max err/tol' if a.check else '') + '  load')
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, src, keep in CASES:
            if a.case and not any(c in name for c in a.case):
                continue
            if isinstance(src, tuple):
                x = np.random.default_rng(0).uniform(-1, 1, size=src).astype(np.float32)
                xpath = os.path.join(tmp, 'input_random.npy')
                np.save(xpath, x)
            else:
                x = np.load(src)
                xpath = src
                if keep is not None:
                    x = np.ascontiguousarray(x[:keep])
                    xpath = os.path.join(tmp, f'input_{keep}.npy')
                    np.save(xpath, x)
            s = ort_session(model, a.threads)
            ot, qt, chosen = [], {i: [] for i in isas}, {}
            for _ in range(a.rounds):
                ot += ort_times(s, x, a.runs)
                for isa in isas:
                    t, chosen[isa] = qtune_times(a.qtune, model, xpath, a.threads, a.runs, isa)
                    qt[isa] += t
            load = os.getloadavg()[0]
            outs = s.run(None, {s.get_inputs()[0].name: x}) if a.check else None
            omin, omed = float(np.min(ot)), float(np.median(ot))
            for isa in isas:
                qmin, qmed = float(np.min(qt[isa])), float(np.median(qt[isa]))
                line = (f'{name:<26} {chosen[isa]:<7} {qmin:>9.2f} {qmed:>9.2f} {omin:>8.2f} {omed:>8.2f} '
                        f'{qmed / omed:>9.2f} {qmin / omin:>9.2f}')
                if a.check:
                    line += f'  {check_outputs(a.qtune, model, xpath, outs, a.threads, isa, tmp):>11.3f}'
                print(line + f'  {load:.2f}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
