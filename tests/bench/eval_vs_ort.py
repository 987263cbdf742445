"""Evaluation speed of the tuning loop: qtune against ONNX Runtime, same machine, one run.

Usage: python3 tests/bench/eval_vs_ort.py [--qtune target/release/qtune] [--threads 2] [--repeat 3]
Needs: pip install onnxruntime onnx numpy pillow   (ONNX Runtime is only the yardstick)

What each side does, on the demo's 300 evaluation images:
- qtune: `qtune bench-tune -c configs/default.yaml --json`: a new stage-5 setting (range search
  from the collected histograms, then a full evaluation: fake-quantized run of every image,
  per-layer fidelity against the cached FP32 outputs, top-1) and exclude_op toggles (incremental).
- ORT: the same quantization exported as a QDQ model (`calibrate` + `export --qdq`), loaded once,
  then every image run through it and top-1 computed, at batch 1 (as qtune runs them, one image per
  worker) and at batch 32 (ORT's better mode on 2 threads); ORT fuses the Q/DQ pairs into real INT8
  kernels. The ratios are against ORT's faster mode. Image decoding is done beforehand and not counted for ORT
  (qtune holds the decoded images in its cache too).
Prints the seconds of each, and qtune / ORT (lower is better). Noise on a shared machine is large:
run it more than once.
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'interop'))
from check_qdq import line_tensor, sh  # noqa: E402  (same preprocessing as qtune)

CONFIG = os.path.join(ROOT, 'configs', 'default.yaml')
EVAL = os.path.join(ROOT, 'assets', 'demo', 'eval')


def ort_eval_seconds(model, X, labels, threads, repeat, batch):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=['CPUExecutionProvider'])
    name = s.get_inputs()[0].name
    s.run(None, {name: X[:1]})
    times, top1 = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = np.concatenate([s.run(None, {name: X[i:i + batch]})[0] for i in range(0, len(X), batch)])
        top1 = float((out.argmax(1) == labels).mean())
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times)), top1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    rows = [l.split() for l in open(os.path.join(EVAL, 'labels.txt')) if l.strip()]
    X = np.stack([line_tensor(os.path.join(EVAL, f)) for f, _ in rows])
    labels = np.array([0 if c == '0' else 1 for _, c in rows])
    with tempfile.TemporaryDirectory() as tmp:
        params, qdq = os.path.join(tmp, 'params.yaml'), os.path.join(tmp, 'qdq.onnx')
        sh(a.qtune, '--quiet', 'calibrate', '-c', CONFIG, '-o', params)
        sh(a.qtune, '--quiet', 'export', '--params', params, '--qdq', qdq)
        ort_runs = {b: ort_eval_seconds(qdq, X, labels, a.threads, a.repeat, b) for b in (1, 32)}
        doc = json.loads(sh(a.qtune, '--threads', str(a.threads), 'bench-tune', '-c', CONFIG,
                            '--repeat', str(a.repeat), '--json'))
    new = doc['new_setting']
    q_eval = new['median_evaluation_s']
    q_setting = q_eval + new['median_search_s']
    print(f'{len(X)} evaluation images, {a.threads} threads')
    for b, (o_min, o_med, o_top1) in ort_runs.items():
        print(f'ORT, exported QDQ model, batch {b:<2}, run + top-1: min {o_min:.3f} s  median {o_med:.3f} s  (top-1 {o_top1:.4f})')
    o_med = min(r[1] for r in ort_runs.values())
    print(f'qtune, new setting, full evaluation:             median {q_eval:.3f} s  -> {q_eval / o_med:.2f}x ORT')
    print(f'qtune, new setting, search + evaluation:         median {q_setting:.3f} s  -> {q_setting / o_med:.2f}x ORT')
    for t in doc['toggles']:
        print(f'qtune, toggle of the {t["position"]:<6} layer ({t["layer"]:<8}):    median {t["median_s"]:.3f} s  '
              f'-> {t["median_s"] / o_med:.2f}x ORT')


if __name__ == '__main__':
    main()
