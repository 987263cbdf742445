"""Calibration speed and memory: `qtune calibrate` end to end against ONNX Runtime's
quantize_static with CalibrationMethod.Entropy on the same tensors, same machine, one run.

Usage: python3 tests/bench/calibrate_vs_ort.py [--qtune target/release/qtune] [--threads 2]
Needs: pip install onnxruntime onnx numpy pillow, and GNU time at /usr/bin/time (for the RSS)
Prints, per model: qtune seconds (image decoding included), ORT seconds (tensors preprocessed
beforehand, not counted) quantizing every op type and only Conv/MatMul/Gemm, the speed-ups, and
qtune's peak RSS at batch_count 10 and 100 (100 only where there are 100 samples).
"""
import argparse, logging, math, os, subprocess, sys, tempfile, time

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnx import version_converter
from PIL import Image

TIME = '/usr/bin/time'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'interop'))
from check_qdq import line_tensor, page_tensor  # noqa: E402  (same preprocessing as qtune)


class Reader(CalibrationDataReader):
    def __init__(self, X, name):
        self.it = iter([{name: X[i:i + 1]} for i in range(len(X))])

    def get_next(self):
        return next(self.it, None)


def run_qtune(exe, threads, config, tmp):
    """Wall seconds and peak RSS (MB) of one `qtune calibrate`.

    The RSS comes from GNU time, not from os.wait4 on a child of this process: on Linux a child
    forked from this Python process inherits its high-water RSS across exec (ORT and the stacked
    tensors make that ~1.5 GB), so wait4's ru_maxrss reported Python's peak, not qtune's.
    /usr/bin/time's own child is forked from a ~2 MB process, so its %M is qtune's own peak."""
    if not os.path.exists(TIME):
        sys.exit(f'{TIME} (GNU time) is needed to measure the peak RSS of qtune alone')
    out = os.path.join(tmp, 'time.txt')
    t = time.perf_counter()
    r = subprocess.run([TIME, '-f', '%M', '-o', out, exe, '--threads', str(threads), '--quiet', 'calibrate', '-c', config,
                        '-o', os.path.join(tmp, 'params.yaml')], stdout=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f'qtune calibrate failed on {config}')
    return dt, int(open(out).read().split()[-1]) / 1024.0


def config_with(src, tmp, batch_count):
    text = open(src).read().replace('../assets', os.path.join(ROOT, 'assets'))
    text = '\n'.join(f'batch_count: {batch_count}' if l.startswith('batch_count:') else l for l in text.splitlines())
    path = os.path.join(tmp, f'{os.path.basename(src)}.{batch_count}.yaml')
    open(path, 'w').write(text + '\n')
    return path


def ort_entropy(model, X, tmp, op_types=None):
    m = onnx.load(model)
    if m.opset_import[0].version < 13:
        m = version_converter.convert_version(m, 13)
    src = os.path.join(tmp, 'm13.onnx'); onnx.save(m, src)
    name = m.graph.input[0].name
    t = time.perf_counter()
    quantize_static(src, os.path.join(tmp, 'q.onnx'), Reader(X, name), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Entropy,
                    op_types_to_quantize=op_types)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--qtune', default=os.path.join(ROOT, 'target/release/qtune'))
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer warns once per bias; keep the table readable
    cases = [
        ('demo (ppocr-cls, 100 lines)', 'configs/default.yaml', 'assets/demo/ppocr-cls.onnx', 'assets/demo/calib', '.png', line_tensor, 100),
        ('ppocr-det (10 pages)', 'configs/detection.yaml', 'assets/det/ppocr-det.onnx', 'assets/det/calib', '.jpg', page_tensor, 10),
    ]
    import onnxruntime
    print(f'onnxruntime {onnxruntime.__version__}; qtune --threads {a.threads}; load avg {os.getloadavg()[0]:.2f}')
    print('qtune s: `qtune calibrate` end to end (process start, model load, image decoding, search, writing the record)')
    print('ORT s: quantize_static(Entropy, QDQ, per-channel) on preprocessed tensors; "all" = every op type (default),')
    print('       "conv" = op_types_to_quantize Conv/MatMul/Gemm (the layers qtune quantizes)')
    print('RSS: peak resident set of `qtune calibrate` (GNU time %M) at batch_count 10 and 100 (100 only if there are 100 samples)')
    print(f'{"case":<28} {"qtune s":>7} {"ORT all s":>9} {"ORT conv s":>10} {"x all":>6} {"x conv":>6}  {"RSS@10 MB":>9} {"RSS@100 MB":>10}')
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, model, data, ext, load, n in cases:
            files = sorted(f for f in os.listdir(os.path.join(ROOT, data)) if f.endswith(ext))[:n]
            X = np.stack([load(os.path.join(ROOT, data, f)) for f in files])
            q, _ = run_qtune(a.qtune, a.threads, config_with(os.path.join(ROOT, cfg), tmp, n), tmp)
            o_all = ort_entropy(os.path.join(ROOT, model), X, tmp)
            o_conv = ort_entropy(os.path.join(ROOT, model), X, tmp, ['Conv', 'MatMul', 'Gemm'])
            _, rss10 = run_qtune(a.qtune, a.threads, config_with(os.path.join(ROOT, cfg), tmp, 10), tmp)
            rss100 = f'{run_qtune(a.qtune, a.threads, config_with(os.path.join(ROOT, cfg), tmp, 100), tmp)[1]:.1f}' if len(files) >= 100 else 'n/a'
            print(f'{name:<28} {q:>7.2f} {o_all:>9.2f} {o_conv:>10.2f} {o_all / q:>5.1f}x {o_conv / q:>5.1f}x  {rss10:>9.1f} {rss100:>10}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
