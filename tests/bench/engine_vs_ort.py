"""FP32 inference speed: qtune against ONNX Runtime, same machine, same thread count, one run.

Usage: python3 tests/bench/engine_vs_ort.py [--threads 2] [--runs 20] [--qtune target/release/qtune]
Needs: pip install onnxruntime numpy   (ONNX Runtime is only the yardstick, never a dependency)
Prints one line per model: median ms of each, and the ratio qtune / ORT (lower is better).
"""
import argparse, json, os, subprocess, sys, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, 'tests', 'fixtures')
CASES = [
    ('ppocr-cls b16 3x48x192', os.path.join(ROOT, 'assets/demo/ppocr-cls.onnx'), os.path.join(FIX, 'reference/ppocr-cls_input.npy')),
    ('ppocr-det 1x3x480x480', os.path.join(ROOT, 'assets/det/ppocr-det.onnx'), os.path.join(FIX, 'reference/ppocr-det_input.npy')),
    ('resnet50 1x3x224x224', os.path.join(FIX, 'models/resnet50.onnx'), os.path.join(FIX, 'reference/light-resnet50_input.npy')),
]


def ort_median(model, x, threads, runs):
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
    return float(np.median(times))


def qtune_median(exe, model, xpath, threads, runs):
    out = subprocess.run([exe, '--threads', str(threads), 'bench', model, '--input', xpath, '--runs', str(runs), '--json'],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)['median_ms']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--runs', type=int, default=20)
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    a = ap.parse_args()
    print(f'onnxruntime {ort.__version__}, {a.threads} threads, median of {a.runs} runs')
    print(f'{"case":<26} {"qtune ms":>9} {"ORT ms":>9} {"ratio":>6}')
    for name, model, xpath in CASES:
        x = np.load(xpath)
        o = ort_median(model, x, a.threads, a.runs)
        q = qtune_median(a.qtune, model, xpath, a.threads, a.runs)
        print(f'{name:<26} {q:>9.2f} {o:>9.2f} {q / o:>6.2f}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
