"""Calibration speed and memory: `qtune calibrate` end to end against ONNX Runtime's
quantize_static with CalibrationMethod.Entropy on the same tensors, same machine, one run.

Usage: python3 tests/bench/calibrate_vs_ort.py [--qtune target/release/qtune] [--threads 2]
Needs: pip install onnxruntime onnx numpy pillow
Prints, per model: qtune seconds (image decoding included), ORT seconds (tensors preprocessed
beforehand, not counted), the speed-up, and qtune's peak RSS at batch_count 10 and 100.
"""
import argparse, math, os, subprocess, sys, tempfile, time

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnx import version_converter
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'interop'))
from check_qdq import line_tensor, page_tensor  # noqa: E402  (same preprocessing as qtune)


class Reader(CalibrationDataReader):
    def __init__(self, X, name):
        self.it = iter([{name: X[i:i + 1]} for i in range(len(X))])

    def get_next(self):
        return next(self.it, None)


def run_qtune(exe, threads, config):
    t = time.perf_counter()
    p = subprocess.Popen([exe, '--threads', str(threads), '--quiet', 'calibrate', '-c', config], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f'qtune calibrate failed on {config}')
    return time.perf_counter() - t, usage.ru_maxrss / 1024.0


def config_with(src, tmp, batch_count):
    text = open(src).read().replace('../assets', os.path.join(ROOT, 'assets'))
    text = '\n'.join(f'batch_count: {batch_count}' if l.startswith('batch_count:') else l for l in text.splitlines())
    path = os.path.join(tmp, f'{os.path.basename(src)}.{batch_count}.yaml')
    open(path, 'w').write(text + '\n')
    return path


def ort_entropy(model, X, tmp):
    m = onnx.load(model)
    if m.opset_import[0].version < 13:
        m = version_converter.convert_version(m, 13)
    src = os.path.join(tmp, 'm13.onnx'); onnx.save(m, src)
    name = m.graph.input[0].name
    t = time.perf_counter()
    quantize_static(src, os.path.join(tmp, 'q.onnx'), Reader(X, name), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Entropy)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    cases = [
        ('demo (ppocr-cls, 100 lines)', 'configs/default.yaml', 'assets/demo/ppocr-cls.onnx', 'assets/demo/calib', '.png', line_tensor, 100),
        ('ppocr-det (10 pages)', 'configs/detection.yaml', 'assets/det/ppocr-det.onnx', 'assets/det/calib', '.jpg', page_tensor, 10),
    ]
    print(f'{"case":<30} {"qtune s":>8} {"ORT s":>8} {"speed-up":>8}  {"RSS@10 MB":>9} {"RSS@100 MB":>10}')
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, model, data, ext, load, n in cases:
            files = sorted(f for f in os.listdir(os.path.join(ROOT, data)) if f.endswith(ext))[:n]
            X = np.stack([load(os.path.join(ROOT, data, f)) for f in files])
            q, _ = run_qtune(a.qtune, a.threads, config_with(os.path.join(ROOT, cfg), tmp, n))
            o = ort_entropy(os.path.join(ROOT, model), X, tmp)
            _, rss10 = run_qtune(a.qtune, a.threads, config_with(os.path.join(ROOT, cfg), tmp, 10))
            _, rss100 = run_qtune(a.qtune, a.threads, config_with(os.path.join(ROOT, cfg), tmp, 100))
            print(f'{name:<30} {q:>8.2f} {o:>8.2f} {o / q:>7.1f}x  {rss10:>9.0f} {rss100:>10.0f}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
