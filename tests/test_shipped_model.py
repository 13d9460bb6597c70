"""The shipped default model: its file, its card, parity with torch, and behaviour on real CT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfkt_edge.backends import create_backend
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model_file import ASSETS, DEFAULT_MODEL
from tfkt_edge.preprocess import LDCTIQAC, preprocess

CARD = ASSETS / "tfkt_edge_s.card.json"


@pytest.fixture(scope="module")
def backend():
    return create_backend("onnxruntime", DEFAULT_MODEL)


def slice_hu(path):
    return load_hu(scan([path]).series[0].slices[0])


def test_model_file_is_small_and_carries_contract_and_card(backend):
    assert DEFAULT_MODEL.stat().st_size < 5 * 2**20
    assert backend.model.contract == LDCTIQAC
    card = json.loads(CARD.read_text())
    assert card == backend.model.card
    assert "NOT radiologist scores" in card["labels"]
    for key in ("architecture", "training_data", "heldout_figures", "reproduce", "input"):
        assert card[key]
    assert card["heldout_figures"]["all"]["overall"] > 2.0


def test_onnx_matches_torch_checkpoint_on_real_ct(real):
    torch = pytest.importorskip("torch")
    from tfkt_edge.export.onnx import max_score_difference
    from tfkt_edge.train.make_default import CHECKPOINTS
    from tfkt_edge.train.trainer import load_checkpoint

    model, checkpoint = load_checkpoint(CHECKPOINTS / "tfkt_edge_s.pt")
    assert checkpoint["preprocess"] == LDCTIQAC.to_json()
    images = np.stack([preprocess(slice_hu(real[k])) for k in ("explicit_le", "jpeg_lossless", "abdomen_j2k", "ct_small")])
    assert torch.is_tensor(next(model.parameters()))
    assert max_score_difference(model, DEFAULT_MODEL, images) < 1e-4


def test_clinical_slices_score_as_diagnostic(real, backend):
    """Every real 512x512 clinical slice we have scores above the alert threshold."""
    for key in ("explicit_le", "jpeg_lossless", "abdomen_j2k", "skull_base_heldout"):
        score = float(backend.infer(preprocess(slice_hu(real[key]))[None, None])[0])
        assert score >= 2.0, (key, score)


def test_dose_ladder_of_a_real_held_out_slice_ranks_monotonically(real, backend):
    """Score falls as simulated dose falls, on the skull-base slice the model never trained on."""
    pytest.importorskip("skimage")
    from tfkt_edge.train.ctsim import Degradation, SliceSimulator

    ref = scan([real["skull_base_heldout"]]).series[0].slices[0]
    simulator = SliceSimulator(load_hu(ref), pixel_mm=ref.pixel_spacing)
    doses = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
    images = [preprocess(simulator.degrade(Degradation(d), np.random.default_rng(11))[0]) for d in doses]
    scores = backend.infer(np.stack(images)[:, None])
    assert all(a > b for a, b in zip(scores, scores[1:])), dict(zip(doses, scores.round(3)))
