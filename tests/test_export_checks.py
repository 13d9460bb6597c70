"""The checks around TensorRT that run without it: operator table, FP16 ONNX, engine precision, sidecar."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tfkt_edge.backends import create_backend
from tfkt_edge.errors import BackendUnavailable, ModelError
from tfkt_edge.export.engine_precision import summarize, tensor_precision
from tfkt_edge.export.tensorrt_ops import check_operators
from tfkt_edge.model.engine_file import EngineSidecar, GpuIdentity, check_compatible, read_sidecar, sha256, sidecar_path
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.model.preprocess import LDCTIQAC


def tiny_graph(nodes, initializers=(), opset=18) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 4])
    y = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_shipped_model_passes_the_tensorrt_operator_check():
    report = check_operators(onnx.load(str(DEFAULT_MODEL)))
    assert report.ok, report.problems
    assert report.opset == 18 and "LayerNormalization" in report.counts
    assert "Constant" not in report.counts  # folded at export


@pytest.mark.parametrize("nodes, initializers, opset, problem", [
    ([helper.make_node("Unique", ["image"], ["score"])], [], 18, "Unique is not supported"),
    ([helper.make_node("Inverse", ["image"], ["score"], domain="com.microsoft")], [], 18, "custom-domain"),
    ([helper.make_node("ReduceSum", ["image", "axes"], ["score"])], [], 18, "must be a build-time constant"),
    ([helper.make_node("Relu", ["image"], ["score"])], [], 22, "outside TensorRT 10's range"),
], ids=["unsupported", "custom-domain", "dynamic-axes", "opset"])
def test_operator_check_names_what_tensorrt_would_refuse(nodes, initializers, opset, problem):
    report = check_operators(tiny_graph(nodes, initializers, opset))
    assert not report.ok and any(problem in p for p in report.problems)


def test_reduce_with_constant_axes_is_accepted():
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    report = check_operators(tiny_graph([helper.make_node("ReduceSum", ["image", "axes"], ["score"], keepdims=0)], [axes]))
    assert report.ok, report.problems


def test_fp16_onnx_keeps_fp32_io_and_matches_on_real_ct(real):
    """The TensorRT 11 path's FP16 graph, calibrated and then scored by ONNX Runtime on real CT."""
    from tfkt_edge.export.calibration import real_ct_slices
    from tfkt_edge.export.fp16 import convert_to_fp16, io_types

    model = onnx.load(str(DEFAULT_MODEL))
    slices = real_ct_slices(LDCTIQAC, [real["explicit_le"], real["abdomen_j2k"], real["skull_base_heldout"]])
    fp16 = convert_to_fp16(model, slices)
    assert io_types(fp16.model) == {"image": TensorProto.FLOAT, "score": TensorProto.FLOAT}
    assert all("LayerNormalization" in why for why in fp16.fp32_nodes.values())
    weights = [t for t in fp16.model.graph.initializer if len(t.dims) == 4]  # conv kernels
    assert weights and all(t.data_type == TensorProto.FLOAT16 for t in weights)
    import onnxruntime as ort

    batch = slices[:, None].astype(np.float32)
    fp32 = ort.InferenceSession(str(DEFAULT_MODEL)).run(None, {"image": batch})[0]
    half = ort.InferenceSession(fp16.model.SerializeToString()).run(None, {"image": batch})[0]
    assert np.max(np.abs(fp32 - half)) < 0.02


def test_calibration_keeps_large_activations_in_fp32():
    """A node whose output reaches 4000 on the calibration data stays FP32; the rest become FP16."""
    from tfkt_edge.export.fp16 import convert_to_fp16

    scale = helper.make_tensor("scale", TensorProto.FLOAT, [1], [4000.0])
    nodes = [helper.make_node("Mul", ["image", "scale"], ["big"], name="amplify"),
             helper.make_node("Sigmoid", ["big"], ["squashed"], name="squash"),
             helper.make_node("ReduceMean", ["squashed"], ["score"], axes=[1, 2], keepdims=0, name="mean")]
    model = tiny_graph(nodes, [scale], opset=17)
    fp16 = convert_to_fp16(model, np.ones((2, 4), dtype=np.float32))  # the graph sees (2, 1, 4)
    assert set(fp16.fp32_nodes) == {"amplify"} and "4e+03" in fp16.fp32_nodes["amplify"]


@pytest.mark.parametrize("text, precision", [
    ("Row major linear FP16 format", "fp16"), ("Half", "fp16"), ("Row major linear FP32", "fp32"), ("Float", "fp32"),
    ("Thirty-two wide channel vectorized row major Int8 format.", "int8"), ("N/A due to dynamic shapes", "unknown"),
])
def test_inspector_formats_are_read_as_precisions(text, precision):
    assert tensor_precision(text) == precision


def _layer(kind: str, fmt: str) -> dict:
    return {"Name": kind, "LayerType": kind, "Inputs": [{"Format/Datatype": fmt}], "Outputs": [{"Format/Datatype": fmt}]}


def test_engine_reported_fp16_only_when_its_compute_layers_are():
    fp16 = {"Layers": [_layer("Reformat", "Float"), _layer("CaskConvolution", "Half"), _layer("Myelin", "Half"),
                       _layer("CaskGemm", "Row major linear FP16 format"), _layer("Reformat", "Float")]}
    fp32 = {"Layers": [_layer("CaskConvolution", "Float"), _layer("Myelin", "Float"), _layer("CaskGemm", "Half")]}
    assert summarize(fp16).is_fp16 and summarize(fp16).counts == {"fp16": 3}
    assert not summarize(fp32).is_fp16 and summarize(fp32).fp16_share == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="DETAILED"):
        summarize({"Layers": ["conv1", "conv2"]})


def write_engine(tmp_path, **changes):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine bytes")
    fields = dict(tensorrt_version="10.8.0.43", gpu=GpuIdentity("NVIDIA H100 80GB HBM3", "9.0"), precision="fp16",
                  profile={"min": [1, 1, 512, 512], "opt": [16, 1, 512, 512], "max": [64, 1, 512, 512]},
                  onnx_sha256=sha256(DEFAULT_MODEL), engine_sha256=sha256(engine), preprocess=LDCTIQAC.to_json(),
                  model="tfkt_edge_s", card={"labels": "test"})
    fields.update(changes)
    sidecar_path(engine).write_text(EngineSidecar(**fields).to_json())
    return engine


def test_sidecar_round_trip_gives_contract_and_profile(tmp_path):
    engine = write_engine(tmp_path)
    sidecar = read_sidecar(engine)
    assert sidecar.max_batch == 64 and sidecar.model_info(engine).contract == LDCTIQAC
    check_compatible(sidecar, engine, "10.8.0.43", GpuIdentity("NVIDIA H100 80GB HBM3", "9.0"))


@pytest.mark.parametrize("version, gpu, says", [
    ("10.9.0.34", GpuIdentity("NVIDIA H100 80GB HBM3", "9.0"), "TensorRT 10.8.0.43, this machine has 10.9.0.34"),
    ("10.8.0.43", GpuIdentity("NVIDIA L4", "8.9"), "this machine has NVIDIA L4 (sm 8.9)"),
])
def test_engine_for_another_tensorrt_or_gpu_is_refused_with_rebuild_advice(tmp_path, version, gpu, says):
    engine = write_engine(tmp_path)
    with pytest.raises(ModelError, match="rebuild it here with tfkt-edge export tensorrt") as caught:
        check_compatible(read_sidecar(engine), engine, version, gpu)
    assert says in str(caught.value)


def test_sidecar_problems_are_clear(tmp_path):
    engine = write_engine(tmp_path)
    engine.write_bytes(b"another engine")
    with pytest.raises(ModelError, match="sha256 differs"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(ModelError, match="not a tfkt-edge engine sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(ModelError, match="has no sidecar model.engine.json"):
        read_sidecar(engine)


def test_tensorrt_backend_reads_the_sidecar_before_needing_tensorrt(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match=r"tfkt-edge\[gpu\]"):
            create_backend("tensorrt", write_engine(tmp_path))
    with pytest.raises(ModelError, match="needs --model MODEL.engine"):
        create_backend("tensorrt")
    with pytest.raises(ModelError, match="is an ONNX model"):
        create_backend("tensorrt", DEFAULT_MODEL)
    assert json.loads(sidecar_path(write_engine(tmp_path)).read_text())["sidecar_version"] == 1
