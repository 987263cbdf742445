"""Interop check: what qtune scored is what ONNX Runtime computes on the model qtune exports.

Usage: python3 tests/interop/check_qdq.py [--qtune target/release/qtune] [--case demo|det|all]
Needs: pip install onnxruntime onnx numpy (CI makes a venv for it; .ci/run).

For each case, twice — from a parameter record (calibrate -o) and from a tuning session's
result (tune, then export --session):
  1. `qtune export` writes the QDQ model; onnx.checker.check_model passes;
  2. `qtune eval ... --dump-outputs DIR` scores the same quantization and writes the inputs
     and the INT8 outputs it scored (the simulation, not a re-run of the exported file);
  3. ONNX Runtime runs the exported model on those inputs, and its outputs are compared with
     the scored ones: the classifier must agree on top-1 for every sample, and at least 95% of
     the samples must be within 1e-4 * max(1, max|ORT|) (measured: 291 of 300 match to ~1e-12;
     in the others a value fell within float rounding of a quantization step, where the two
     engines' different summation orders round it to neighbouring steps, and the difference
     propagates); the detector's IoU against FP32 (computed from ORT's outputs) must be within
     0.002 of the IoU qtune reported.
Also: with every layer on exclude_op the exported model's ORT outputs equal the FP32 model's.
ONNX Runtime runs these QDQ layers as DequantizeLinear + float Conv (the layer outputs are not
re-quantized, so no INT8 kernel applies): the comparison is of the same arithmetic up to float
rounding. Exit code 1 on any failure.
"""
import argparse, glob, json, os, shutil, subprocess, sys, tempfile

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = {
    'demo': dict(config='configs/default.yaml', model='assets/demo/ppocr-cls.onnx', kind='cls'),
    'det': dict(config='configs/detection.yaml', model='assets/det/ppocr-det.onnx', kind='det'),
}


def sh(*cmd, ok=(0,)):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in ok:
        sys.exit(f'FAILED ({r.returncode}): {" ".join(cmd)}\n{r.stderr}')
    return r.stdout


def session(model):
    return ort.InferenceSession(model, providers=['CPUExecutionProvider'])


def run(s, inputs):
    names = [i.name for i in s.get_inputs()]
    return s.run(None, dict(zip(names, inputs)))


def load_dump(d):
    """[(inputs, outputs)] per sample, in evaluation order."""
    out = []
    for i in range(len(glob.glob(os.path.join(d, '*_output_0.npy')))):
        ins = [np.load(p) for p in sorted(glob.glob(os.path.join(d, f'{i:05}_input_*.npy')))]
        outs = [np.load(p) for p in sorted(glob.glob(os.path.join(d, f'{i:05}_output_*.npy')))]
        out.append((ins, outs))
    return out


def iou(p, q, th):
    a, b = p > th, q > th
    return (a & b).sum() / max(1, (a | b).sum())


def compare(name, kind, qdq, fp32_model, dump_dir, report, label):
    samples = load_dump(dump_dir)
    q, f = session(qdq), session(fp32_model)
    worst, agree, ious, close = 0.0, 0, [], 0
    for ins, scored in samples:
        got = run(q, ins)
        here = 0.0
        for g, s in zip(got, scored):
            tol = 1e-4 * max(1.0, float(np.abs(g).max()))
            here = max(here, float(np.abs(g - s).max()) / tol)
        worst = max(worst, here)
        close += int(here <= 1.0)
        if kind == 'cls':
            agree += int(got[0].argmax() == scored[0].argmax())
        else:
            ious.append(iou(run(f, ins)[0], got[0], report['iou_threshold']))
    ok = True
    if kind == 'cls':
        ok &= agree == len(samples) and close >= 0.95 * len(samples)
        print(f'{name} ({label}): {len(samples)} samples, top-1 agreement ORT vs scored {agree}/{len(samples)}, '
              f'{close} within 1e-4 x max(1, |ORT|) (max {worst:.1f} x that)')
    else:
        ort_iou = float(np.mean(ious))
        gap = abs(ort_iou - report['int8'])
        ok &= gap <= 0.002
        print(f'{name} ({label}): {len(samples)} pages, IoU vs FP32: scored {report["int8"]:.4f}, '
              f'ORT on the export {ort_iou:.4f} (|gap| {gap:.4f} <= 0.002), '
              f'{close} pages within 1e-4 x max(1, |ORT|)')
    return ok


def check(name, exe, tmp, tune):
    c = CASES[name]
    cfg = os.path.join(ROOT, c['config'])
    model = os.path.join(ROOT, c['model'])
    iou_th = 0.3
    ok = True
    # 1. From a parameter record.
    params = os.path.join(tmp, f'{name}_params.yaml')
    qdq = os.path.join(tmp, f'{name}_qdq.onnx')
    sh(exe, '--quiet', 'calibrate', '-c', cfg, '-o', params)
    sh(exe, '--quiet', 'export', '--params', params, '--qdq', qdq)
    onnx.checker.check_model(onnx.load(qdq), full_check=True)
    d = os.path.join(tmp, f'{name}_dump')
    rep = json.loads(sh(exe, '--quiet', 'eval', '-c', cfg, '--params', params, '--json', '--dump-outputs', d))
    rep['report']['iou_threshold'] = iou_th
    ok &= compare(name, c['kind'], qdq, model, d, rep['report'], 'parameter record')
    # 2. From a session's result (the flow, then export --session).
    if tune:
        s = os.path.join(tmp, f'{name}.session.json')
        sh(exe, '--quiet', 'tune', '-c', cfg, '--session', s, ok=(0, 1))
        qdq_s = os.path.join(tmp, f'{name}_session_qdq.onnx')
        print(sh(exe, 'export', '--session', s, '--qdq', qdq_s).strip().splitlines()[0])
        onnx.checker.check_model(onnx.load(qdq_s), full_check=True)
        d2 = os.path.join(tmp, f'{name}_session_dump')
        rep2 = json.loads(sh(exe, '--quiet', 'eval', '-c', cfg, '--session', s, '--json', '--dump-outputs', d2))
        rep2['report']['iou_threshold'] = iou_th
        ok &= compare(name, c['kind'], qdq_s, model, d2, rep2['report'], 'session result')
    # 3. Every layer excluded: the exported model computes the FP32 model's outputs.
    names = [l['name'] for l in json.loads(sh(exe, 'inspect', model, '--json'))['layers']]
    cfg_all = os.path.join(tmp, f'{name}_all_excluded.yaml')
    text = open(cfg).read().replace('exclude_op: []', 'exclude_op: ' + json.dumps(names))
    open(cfg_all, 'w').write(text.replace('../assets', os.path.join(ROOT, 'assets')))
    params_all = os.path.join(tmp, f'{name}_params_all.yaml')
    qdq_all = os.path.join(tmp, f'{name}_qdq_all.onnx')
    sh(exe, '--quiet', 'calibrate', '-c', cfg_all, '-o', params_all)
    sh(exe, '--quiet', 'export', '--params', params_all, '--qdq', qdq_all)
    diffs = []
    fs, qs = session(model), session(qdq_all)
    for ins, _ in load_dump(d)[:8]:
        a, b = run(fs, ins)[0], run(qs, ins)[0]
        diffs.append(float(np.abs(a - b).max()) / max(1.0, float(np.abs(a).max())))
    ok &= max(diffs) <= 1e-5
    print(f'{name}: all {len(names)} layers excluded: max |ORT(export) - ORT(FP32)| = {max(diffs):.2e} (relative)')
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    ap.add_argument('--case', default='demo', choices=['demo', 'det', 'all'])
    ap.add_argument('--no-tune', action='store_true', help='skip the session check (tune + export --session)')
    a = ap.parse_args()
    names = ['demo', 'det'] if a.case == 'all' else [a.case]
    tmp = tempfile.mkdtemp(prefix='qtune-interop-')
    try:
        results = [check(n, a.qtune, tmp, not a.no_tune) for n in names]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print('interop:', 'passed' if all(results) else 'FAILED')
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
