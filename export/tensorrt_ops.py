"""Which ONNX operators TensorRT's ONNX parser accepts, checked before an engine is built.

The table follows onnx-tensorrt's docs/operators.md (TensorRT 10.x): the
operators marked "Y", and, for those whose restriction a graph can break
statically, the inputs that must be build-time constants. TensorRT 10.0 parses
opsets 9 to 20; TensorRT 11 parses 9 to 25 (the TensorRT 11 release notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

OPSET_RANGE = (9, 20)  # the narrowest supported range: TensorRT 10.0

SUPPORTED = frozenset(["Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "Attention", "AveragePool", "BatchNormalization", "BlackmanWindow", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DeformConv", "DepthToSpace", "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample", "GroupNormalization", "GRU", "HammingWindow", "HannWindow", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "If", "ImageScaler", "InstanceNormalization", "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LRN", "LSTM", "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "Pad", "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RMSNormalization", "RNN", "RoiAlign", "RotaryEmbedding", "Round", "STFT", "ScaledTanh", "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor"])

# Operator -> index of the input that must be a build-time constant (initializer or Constant).
CONSTANT_INPUTS = {
    **{op: 1 for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                        "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Squeeze", "Unsqueeze")},
    "Conv": 1,
    "ConvTranspose": 1,
    "TopK": 1,
}


@dataclass(frozen=True)
class OperatorReport:
    """What a graph uses, and what of it TensorRT's parser would refuse."""

    opset: int
    counts: dict[str, int]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_operators(model: onnx.ModelProto) -> OperatorReport:
    """Check every node of ``model`` (subgraphs included) against the TensorRT 10 parser's table."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    problems: list[str] = []
    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        problems.append(f"opset {opset} is outside TensorRT 10's range {OPSET_RANGE[0]}-{OPSET_RANGE[1]}")
    counts: dict[str, int] = {}
    for graph in _graphs(model.graph):
        constants = {t.name for t in graph.initializer}
        constants.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
        for node in graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
            where = node.name or node.output[0]
            if node.domain not in ("", "ai.onnx"):
                problems.append(f"{where}: {node.domain}::{node.op_type} is a custom-domain operator (needs a plugin)")
            elif node.op_type not in SUPPORTED:
                problems.append(f"{where}: {node.op_type} is not supported by TensorRT's ONNX parser")
            index = CONSTANT_INPUTS.get(node.op_type)
            if index is not None and len(node.input) > index and node.input[index] and node.input[index] not in constants:
                problems.append(f"{where}: {node.op_type} input {index} must be a build-time constant")
    return OperatorReport(opset, dict(sorted(counts.items())), tuple(problems))


def _graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attribute.g)
            for sub in attribute.graphs:
                yield from _graphs(sub)
