#!/usr/bin/env python3
"""Writes ONNX's backend test suite, as the onnx pip package defines it, into a folder.

    python3 tests/onnx_suite/generate.py OUT        (needs `pip install onnx==1.23.2 numpy`)

OUT/node/<case>/            every node test of `onnx.backend.test.case.node` (the `_expanded`
                            function bodies included); the wheel ships no data for these, so
                            the collectors are called and each case is written like ONNX's own
                            `backend-test-tools generate-data` writes model cases:
                            model.onnx + test_data_set_N/input_K.pb, output_K.pb
OUT/pytorch-converted/…,    copied from the data the wheel ships
OUT/pytorch-operator/…,
OUT/simple/…
OUT/ONNX_VERSION            the onnx version that wrote it

`cargo test --release --test onnx_suite` runs the folder when QTUNE_ONNX_SUITE=OUT
(tests/onnx_suite.rs; expected results in tests/onnx_suite/manifest.txt). The output is
not committed: CI (.ci/run) regenerates it in a venv with the pinned onnx.
"""

import os
import shutil
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
import onnx.backend.test.case.node as node_cases

PINNED = "1.23.2"
MODEL_SUITES = ("pytorch-converted", "pytorch-operator", "simple")


def serialize(value, type_proto, name):
    """One input or output as protobuf bytes (tensor, sequence, optional or map)."""
    if type_proto.HasField("map_type"):
        return numpy_helper.from_dict(value, name).SerializeToString()
    if type_proto.HasField("sequence_type"):
        return numpy_helper.from_list(value, name).SerializeToString()
    if type_proto.HasField("optional_type"):
        return numpy_helper.from_optional(value, name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, name).SerializeToString()


def write_case(case, out_dir):
    os.makedirs(out_dir)
    with open(os.path.join(out_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    graph = case.model.graph
    for i, (inputs, outputs) in enumerate(case.data_sets):
        data = os.path.join(out_dir, f"test_data_set_{i}")
        os.makedirs(data)
        for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
            for j, value in enumerate(values):
                with open(os.path.join(data, f"{kind}_{j}.pb"), "wb") as f:
                    f.write(serialize(value, infos[j].type, infos[j].name))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py OUT")
    if onnx.__version__ != PINNED:
        sys.exit(f"onnx {onnx.__version__} is installed; the manifest was made with onnx=={PINNED}")
    out = sys.argv[1]
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "node"))
    # The cases draw random inputs: a fixed seed makes every generation the same. The
    # collectors' numpy warnings (overflow in casts they test on purpose) are noise.
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases()
    for case in cases:
        write_case(case, os.path.join(out, "node", case.name))
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    counts = {"node": len(cases)}
    for suite in MODEL_SUITES:
        shutil.copytree(os.path.join(data, suite), os.path.join(out, suite))
        counts[suite] = len(os.listdir(os.path.join(out, suite)))
    with open(os.path.join(out, "ONNX_VERSION"), "w") as f:
        f.write(onnx.__version__ + "\n")
    print(f"{out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
