"""Interop check: a QDQ model exported by qtune runs in ONNX Runtime and computes what qtune's
own simulation computes.

Usage: python3 tests/interop/check_qdq.py [--qtune target/release/qtune] [--case demo|det|all]
Needs: pip install onnxruntime onnx numpy pillow (CI makes a venv for it; .ci/run).

For each case: calibrate with a shipped config, export --qdq, onnx.checker.check_model, run the
exported model in ONNX Runtime and in qtune (`qtune infer`, i.e. the simulation) on the evaluation
tensors, and compare: top-1 agreement >= 99% (classifier) / IoU of the maps at 0.3 >= 0.99
(detector), and cosine >= 0.999. Also: with every layer on exclude_op the exported model's ORT
outputs equal the FP32 model's. Exit code 1 on any failure.
"""
import argparse, json, math, os, subprocess, sys, tempfile

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def line_tensor(path, h=48, w=192):
    im = Image.open(path).convert('RGB'); iw, ih = im.size
    nw = min(w, int(math.ceil(h * iw / ih)))
    a = np.asarray(im.resize((nw, h), Image.BILINEAR), np.float32).transpose(2, 0, 1)
    t = np.zeros((3, h, w), np.float32); t[:, :, :nw] = (a - 127.5) / 127.5
    return t


def page_tensor(path):
    a = np.asarray(Image.open(path).convert('RGB'), np.float32)
    mean = np.array([123.675, 116.28, 103.53], np.float32); std = np.array([58.395, 57.12, 57.375], np.float32)
    return ((a - mean) / std).transpose(2, 0, 1).astype(np.float32)


CASES = {
    'demo': dict(config='configs/default.yaml', model='assets/demo/ppocr-cls.onnx', data='assets/demo/eval', ext='.png',
                 load=line_tensor, kind='cls'),
    'det': dict(config='configs/detection.yaml', model='assets/det/ppocr-det.onnx', data='assets/det/eval', ext='.jpg',
                load=page_tensor, kind='det', limit=6),
}


def sh(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f'FAILED: {" ".join(cmd)}\n{r.stderr}')
    return r.stdout


def ort_run(model, X):
    s = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: X[i:i + 1]})[0] for i in range(len(X))])


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def iou(a, b, th=0.3):
    return float(np.mean([((p > th) & (q > th)).sum() / max(1, ((p > th) | (q > th)).sum()) for p, q in zip(a, b)]))


def check(name, exe, tmp):
    c = CASES[name]
    files = sorted(f for f in os.listdir(os.path.join(ROOT, c['data'])) if f.endswith(c['ext']))[: c.get('limit')]
    X = np.stack([c['load'](os.path.join(ROOT, c['data'], f)) for f in files])
    xpath = os.path.join(tmp, f'{name}_x.npy'); np.save(xpath, X)
    params = os.path.join(tmp, f'{name}_params.yaml'); qdq = os.path.join(tmp, f'{name}_qdq.onnx')
    sh(exe, '--quiet', 'calibrate', '-c', os.path.join(ROOT, c['config']), '-o', params)
    sh(exe, '--quiet', 'export', '--params', params, '--qdq', qdq)
    onnx.checker.check_model(onnx.load(qdq), full_check=True)
    got_ort = ort_run(qdq, X)
    out = os.path.join(tmp, f'{name}_out'); sh(exe, 'infer', qdq, '--input', xpath, '--out', out)
    got_qtune = np.load(os.path.join(out, 'output_0.npy'))
    cos = cosine(got_ort, got_qtune)
    ok = cos >= 0.999
    if c['kind'] == 'cls':
        agree = float((got_ort.argmax(1) == got_qtune.argmax(1)).mean())
        ok &= agree >= 0.99
        print(f'{name}: {len(X)} samples, top-1 agreement ORT vs qtune {agree:.4f}, cosine {cos:.6f}')
    else:
        m = iou(got_ort, got_qtune)
        ok &= m >= 0.99
        print(f'{name}: {len(X)} samples, IoU@0.3 ORT vs qtune {m:.4f}, cosine {cos:.6f}')
    # Every layer excluded: the exported model must compute the FP32 model's outputs.
    names = [l['name'] for l in json.loads(sh(exe, 'inspect', os.path.join(ROOT, c['model']), '--json'))['layers']]
    cfg_all = os.path.join(tmp, f'{name}_all_excluded.yaml')
    text = open(os.path.join(ROOT, c['config'])).read().replace('exclude_op: []', 'exclude_op: ' + json.dumps(names))
    text = text.replace('../assets', os.path.join(ROOT, 'assets'))
    open(cfg_all, 'w').write(text)
    params_all = os.path.join(tmp, f'{name}_params_all.yaml'); qdq_all = os.path.join(tmp, f'{name}_qdq_all.onnx')
    sh(exe, '--quiet', 'calibrate', '-c', cfg_all, '-o', params_all)
    sh(exe, '--quiet', 'export', '--params', params_all, '--qdq', qdq_all)
    fp32 = ort_run(os.path.join(ROOT, c['model']), X)
    excl = ort_run(qdq_all, X)
    diff = float(np.abs(fp32 - excl).max())
    ok &= diff <= 1e-5 * max(1.0, float(np.abs(fp32).max()))
    print(f'{name}: all {len(names)} layers excluded: max |ORT(export) - ORT(FP32)| = {diff:.2e}')
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    ap.add_argument('--case', default='demo', choices=['demo', 'det', 'all'])
    a = ap.parse_args()
    names = ['demo', 'det'] if a.case == 'all' else [a.case]
    with tempfile.TemporaryDirectory() as tmp:
        results = [check(n, a.qtune, tmp) for n in names]
    print('interop:', 'passed' if all(results) else 'FAILED')
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
