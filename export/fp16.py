"""An FP16 ONNX made from the FP32 one, calibrated on real CT slices, inputs and outputs kept FP32.

TensorRT 11 networks are strongly typed: the precision of every layer is the
precision of its ONNX tensors, so FP16 must be in the graph itself
(TensorRT 11 removed BuilderFlag.FP16: its release notes). Which nodes may run in FP16 is decided by running the
FP32 graph on real CT slices and reading every intermediate tensor's range, in
the spirit of ModelOpt AutoCast: a node stays FP32 when its observed
magnitude leaves too little headroom below FP16's largest value, when it is a
sum of squares that overflows FP16 internally, or when its operator is one
whose FP16 rounding hurts accuracy (normalisations).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import onnx

from tfkt_edge.model.model_file import INPUT_NAME

FP16_MAX = 65504.0
DATA_MAX = 512.0  # observed |x| above this stays FP32: 128x headroom for slices unlike the calibration set
ALWAYS_FP32 = ("LayerNormalization",)
SQUARE_SUMS = ("ReduceL2", "ReduceSumSquare")  # accumulate x^2 before any square root


@dataclass(frozen=True)
class Fp16Graph:
    model: onnx.ModelProto
    fp16_nodes: int
    fp32_nodes: dict[str, str]  # node name -> why it stayed FP32


def tensor_ranges(model: onnx.ModelProto, images: np.ndarray, batch_size: int = 8) -> dict[str, float]:
    """Largest |value| of every float tensor the graph computes, over preprocessed ``images`` (N x S x S)."""
    import onnxruntime as ort

    inferred = onnx.shape_inference.infer_shapes(model)
    probe = onnx.ModelProto()
    probe.CopyFrom(inferred)
    known = {o.name for o in probe.graph.output}
    for info in inferred.graph.value_info:
        if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and info.name not in known:
            probe.graph.output.append(info)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Unoptimised, so every tensor the graph names is still computed as named.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ranges = dict.fromkeys(names, 0.0)
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size, None].astype(np.float32)
        for name, value in zip(names, session.run(names, {INPUT_NAME: batch})):
            if value.size:
                ranges[name] = max(ranges[name], float(np.max(np.abs(value))))
    return ranges


def fp32_reasons(model: onnx.ModelProto, ranges: dict[str, float]) -> dict[str, str]:
    """Nodes that must stay FP32, each with the reason."""
    reasons: dict[str, str] = {}
    for node in model.graph.node:
        observed = max((ranges.get(o, 0.0) for o in node.output), default=0.0)
        if node.op_type in ALWAYS_FP32:
            reasons[node.name] = f"{node.op_type} kept FP32 for accuracy"
        elif node.op_type in SQUARE_SUMS and observed ** 2 > FP16_MAX / 4:
            reasons[node.name] = f"sum of squares reaches {observed ** 2:.3g}"
        elif observed > DATA_MAX:
            reasons[node.name] = f"|x| reaches {observed:.3g} on real CT (limit {DATA_MAX:g})"
    return reasons


def convert_to_fp16(model: onnx.ModelProto, calibration: np.ndarray) -> Fp16Graph:
    """FP16 copy of ``model``: FP32 inputs and outputs, FP32 where calibration says so, FP16 elsewhere."""
    from onnxconverter_common import float16

    reasons = fp32_reasons(model, tensor_ranges(model, calibration))
    with warnings.catch_warnings():  # tiny constants (epsilons) are clamped to FP16's smallest normal
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=list(reasons),
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST), disable_shape_infer=False,
        )
    onnx.checker.check_model(converted)
    compute = [n for n in converted.graph.node if n.op_type != "Cast"]
    return Fp16Graph(converted, len(compute) - len(reasons), reasons)


def io_types(model: onnx.ModelProto) -> dict[str, int]:
    return {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
