"""FP32 inference speed: qtune against ONNX Runtime, same machine, same thread count, one run.

Usage: python3 tests/bench/engine_vs_ort.py [--threads 2] [--runs 20] [--qtune target/release/qtune]
Needs: pip install onnxruntime numpy   (ONNX Runtime is only the yardstick, never a dependency)
Both engines get the same input tensor (the committed reference inputs) and the same thread count;
each case runs ORT then qtune back to back (one warm-up run each, load time not counted).
Prints one line per model: min and median ms of each, and the ratio qtune / ORT of the medians and
of the minima (lower is better). Run it more than once: on a shared machine the noise is large.
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, 'tests', 'fixtures')
CLS_INPUT = os.path.join(FIX, 'reference/ppocr-cls_input.npy')
# (name, model, input .npy, number of leading samples to keep or None for the whole tensor)
CASES = [
    ('ppocr-cls b16 3x48x192', os.path.join(ROOT, 'assets/demo/ppocr-cls.onnx'), CLS_INPUT, None),
    ('ppocr-cls b1 3x48x192', os.path.join(ROOT, 'assets/demo/ppocr-cls.onnx'), CLS_INPUT, 1),
    ('ppocr-det 1x3x480x480', os.path.join(ROOT, 'assets/det/ppocr-det.onnx'), os.path.join(FIX, 'reference/ppocr-det_input.npy'), None),
    ('resnet50 1x3x224x224', os.path.join(FIX, 'models/resnet50.onnx'), os.path.join(FIX, 'reference/light-resnet50_input.npy'), None),
]


def ort_times(model, x, threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=['CPUExecutionProvider'])
    feed = {s.get_inputs()[0].name: x}
    s.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.min(times)), float(np.median(times))


def qtune_times(exe, model, xpath, threads, runs):
    out = subprocess.run([exe, '--threads', str(threads), 'bench', model, '--input', xpath, '--runs', str(runs), '--json'],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r['min_ms'], r['median_ms']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--runs', type=int, default=20)
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    a = ap.parse_args()
    print(f'onnxruntime {ort.__version__}, {a.threads} threads, {a.runs} timed runs after 1 warm-up; load avg {os.getloadavg()[0]:.2f}')
    print(f'{"case":<24} {"qtune min":>9} {"qtune med":>9} {"ORT min":>8} {"ORT med":>8} {"ratio med":>9} {"ratio min":>9}')
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, xpath, keep in CASES:
            x = np.load(xpath)
            if keep is not None:
                x = np.ascontiguousarray(x[:keep])
                xpath = os.path.join(tmp, f'input_{keep}.npy')
                np.save(xpath, x)
            omin, omed = ort_times(model, x, a.threads, a.runs)
            qmin, qmed = qtune_times(a.qtune, model, xpath, a.threads, a.runs)
            print(f'{name:<24} {qmin:>9.2f} {qmed:>9.2f} {omin:>8.2f} {omed:>8.2f} {qmed / omed:>9.2f} {qmin / omin:>9.2f}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
