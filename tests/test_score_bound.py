"""The noise bound on the score: the label rule applied to each slice's measured noise caps the learned score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tfkt_edge.backends import create_backend
from tfkt_edge.cli.main import app
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.model.preprocess import LDCTIQAC
from tfkt_edge.train.ctnoise import D_HALF, SHAPE, label_from_visible
from tfkt_edge.verdict.bound import PHYSICS_DEFAULTS, ScoreBound, bound_from_card, bounded

from .test_verdict_attacks import _abdomen, write

runner = CliRunner()


def test_the_bound_is_the_label_rule_and_falls_with_noise():
    shipped = create_backend("onnxruntime", DEFAULT_MODEL).model
    assert shipped.score_bound.source == "model card" and "score bound: model card" in shipped.checks
    for bound in (PHYSICS_DEFAULTS, shipped.score_bound):
        assert (bound.d_half, bound.shape) == (D_HALF, SHAPE)
        values = [bound.of_noise(n, "soft", LDCTIQAC) for n in (5.0, 20.0, 40.0, 80.0, 200.0)]
        assert values == sorted(values, reverse=True) and values[0] > 3.9 and values[-1] < 0.1
        assert bound.of_noise(40.0, "soft", LDCTIQAC) == pytest.approx(label_from_visible(40.0))
        # A sharp kernel is held to the most forgiving window readers use for it: a bone window (W2000).
        assert bound.of_noise(150.0, "sharp", LDCTIQAC) == pytest.approx(label_from_visible(150.0 * 350 / 2000), abs=1e-3)
        assert bound.of_noise(None, "soft", LDCTIQAC) is None and bound.of_noise(float("nan"), "soft", LDCTIQAC) is None
    assert bounded(3.5, 2.1) == 2.1 and bounded(1.2, 3.9) == 1.2 and bounded(3.0, None) == 3.0


@pytest.mark.parametrize("section", [{"d_half": 1e300, "shape": 4}, {"d_half": 40, "shape": -1}, {"shape": 4},
                                     {"d_half": 40, "shape": 4, "noise_scale": 0}, "loose"])
def test_a_malformed_bound_in_a_card_is_refused(section):
    with pytest.raises((ValueError, KeyError)):
        bound_from_card(section)


def test_a_card_without_a_bound_is_held_to_the_label_rule():
    assert bound_from_card(None) is PHYSICS_DEFAULTS and PHYSICS_DEFAULTS.source == "physics defaults"
    assert ScoreBound.from_dict(PHYSICS_DEFAULTS.to_dict()) == ScoreBound(D_HALF, SHAPE)


def test_every_output_score_is_the_learned_score_capped_by_the_bound_of_its_noise(realct, tmp_path):
    """Down a ladder of added noise on a real abdomen, through `tfkt-edge score`: each slice's score is
    min(learned, bound), the bound falls as the noise rises, and a noisier copy never scores above a quieter one."""
    levels = [0.0, 15.0, 30.0, 45.0, 60.0]
    folders = []
    for k, level in enumerate(levels):
        folders.append(tmp_path / f"n{k}")
        write(_abdomen(realct), folders[-1], 1, level, seed=k)
    result = runner.invoke(app, ["score", *map(str, folders), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    by_folder = {}
    for series in json.loads(result.stdout)["series"]:
        (s,) = series["slices"]
        assert s["score"] == pytest.approx(min(s["learned_score"], s["noise_bound"]), abs=1e-4)
        by_folder[s["path"].split("/")[-2]] = (s["score"], s["noise_bound"], s["learned_score"])
    scores = [by_folder[f"n{k}"][0] for k in range(len(levels))]
    bounds = [by_folder[f"n{k}"][1] for k in range(len(levels))]
    assert bounds == sorted(bounds, reverse=True) and bounds[0] > 3.5 and bounds[-1] < 1.5
    assert all(b <= a + 0.01 for a, b in zip(scores, scores[1:])), scores


def test_the_evaluation_shows_the_verdict_score_the_learned_score_and_the_noise_index(tmp_path, real):
    """`tfkt-edge evaluate --data` on an LDCTIQAC-layout folder made of a real slice and noisier copies."""
    tifffile = pytest.importorskip("tifffile")
    from tfkt_edge.dicom import scan
    from tfkt_edge.pipeline.decode import decode_slice

    image = decode_slice(scan([real["abdomen_j2k"]]).series[0].slices[0], LDCTIQAC)
    folder = tmp_path / "LDCTIQAG2023_train"
    (folder / "image").mkdir(parents=True)
    labels, rng = {}, np.random.default_rng(0)
    span = LDCTIQAC.hu_max - LDCTIQAC.hu_min
    for i, hu in enumerate((0.0, 20.0, 40.0, 60.0, 90.0)):
        noisy = np.clip(image + rng.normal(size=image.shape) * hu / span, 0, 1).astype(np.float32)
        tifffile.imwrite(folder / "image" / f"{i:04d}.tif", noisy)
        labels[f"{i:04d}.tif"] = round(4.0 - 0.9 * i, 1)
    (folder / "train.json").write_text(json.dumps(labels))
    result = runner.invoke(app, ["evaluate", "--data", str(folder)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "verdict score" in result.stdout and "learned score alone" in result.stdout
    assert "global noise index" in result.stdout
