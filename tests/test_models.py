"""The model family: registry, shapes, the split forward pass, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tfkt_edge.errors import UnknownNameError  # noqa: E402
from tfkt_edge.model.network import MODELS, create_model  # noqa: E402


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "tfkt_v2" else n for n in MODELS.names()])
def test_variant_scores_a_batch_in_range(name):
    model = create_model(name).eval()
    x = torch.rand(2, 1, 512, 512)
    with torch.no_grad():
        features = model.forward_features(x)
        scores = model.forward_head(features)
        assert features.shape == (2, model.embed_dim)
        assert scores.shape == (2,)
        assert torch.all((scores >= 0) & (scores <= 4))
        torch.testing.assert_close(model(x), scores)


def test_registry_refuses_duplicates_and_names_choices():
    with pytest.raises(ValueError, match="already registered"):
        MODELS.register("tfkt_edge_s")(lambda: None)
    with pytest.raises(UnknownNameError, match="tfkt_edge_s"):
        create_model("resnet9000")


def test_export_writes_contract_and_checks_parity(tmp_path):
    import onnx

    from tfkt_edge.backends import create_backend
    from tfkt_edge.export.onnx import export_onnx, max_score_difference
    from tfkt_edge.model.preprocess import LDCTIQAC

    model = create_model("tfkt_edge_s").eval()
    exported = export_onnx(model, "tfkt_edge_s", LDCTIQAC, {"labels": "test"}, tmp_path / "m.onnx")
    path = exported.path
    graph = onnx.load(str(path))
    meta = {p.key: p.value for p in graph.metadata_props}
    # Folded: the position-bias MLPs (Relu) and shape arithmetic (Unsqueeze, Constant) are gone.
    assert exported.nodes_simplified < exported.nodes_exported / 2
    assert not {"Relu", "Unsqueeze", "Constant"} & {n.op_type for n in graph.graph.node}
    assert exported.operators.ok and exported.operators.counts["LayerNormalization"] == 11
    assert meta["tfkt_edge.preprocess"] == LDCTIQAC.to_json()
    images = np.random.default_rng(0).random((3, 512, 512), dtype=np.float32)
    assert max_score_difference(model, path, images) < 1e-4
    backend = create_backend("onnxruntime", path)
    assert backend.model.contract == LDCTIQAC and backend.infer(images[:, None]).shape == (3,)


def test_reference_is_the_published_tfkt_v2_layout():
    """EfficientNetV2-L (1-channel stem, 79 blocks, 1280 out) -> Linear(1280, 4096) as 1x64x64 -> SwinV2-B -> Linear(1024, 1)."""
    from tfkt_edge.model.network import PooledLinearBridge, SwinV2Block

    with torch.device("meta"):
        model = create_model("tfkt_v2")
    assert model.cnn.stem[0].in_channels == 1 and len(model.cnn.blocks) == 79 and model.cnn.out_channels == 1280
    assert isinstance(model.bridge, PooledLinearBridge) and tuple(model.bridge.fc.weight.shape) == (4096, 1280)
    assert model.transformer.patch_embed.proj.in_channels == 1 and model.transformer.patch_embed.proj.kernel_size == (4, 4)
    blocks = [m for m in model.transformer.layers if isinstance(m, SwinV2Block)]
    assert [b.attn.heads for b in blocks] == [4] * 2 + [8] * 2 + [16] * 18 + [32] * 2
    assert tuple(model.head.weight.shape) == (1, 1024)
    assert 205e6 < sum(p.numel() for p in model.parameters()) < 213e6
