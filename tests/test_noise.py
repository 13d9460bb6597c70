"""The noise check on real CT: what it measures, where its ceilings lie, and how it joins the verdict."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from tfkt_edge.backends import create_backend
from tfkt_edge.cli.main import app
from tfkt_edge.dicom import scan
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.model.preprocess import LDCTIQAC
from tfkt_edge.pipeline.decode import decode_slice
from tfkt_edge.verdict.domain import image_stats, kernel_class
from tfkt_edge.verdict.judge import judge
from tfkt_edge.verdict.noise import NoiseLimits, assess_noise, at_reference, measure, region_of
from tfkt_edge.verdict.physics import water_diameter_cm
from tfkt_edge.verdict.policy import AlertPolicy
from tfkt_edge.verdict.result import SliceScore

SPAN = LDCTIQAC.hu_max - LDCTIQAC.hu_min
LIMITS = create_backend("onnxruntime", DEFAULT_MODEL).model.noise_limits
runner = CliRunner()


def _noisy(image: np.ndarray, hu: float, seed: int, blur: float = 1.0) -> np.ndarray:
    """The model input with soft-textured noise of RMS ``hu`` added (Gaussian-blurred white noise)."""
    noise = gaussian_filter(np.random.default_rng(seed).normal(size=image.shape), blur)
    return np.clip(image + (hu / SPAN) * noise / noise.std(), 0.0, 1.0).astype(np.float32)


def _judged(series, images, policy=AlertPolicy(), limits=LIMITS, score=3.6):
    """The series judged with passing scores and the statistics of ``images``: only the noise check can alert."""
    scored = [SliceScore(ref, score, image_stats(im)) for ref, im in zip(series.slices, images)]
    return judge(series, scored, policy, None, limits)


def test_the_shipped_model_carries_noise_figures_measured_on_its_training_slices():
    assert LIMITS.source == "model card" and set(LIMITS.routine_hu) == {"soft", "sharp"}
    assert 10.0 < LIMITS.routine_hu["soft"] < 25.0 and LIMITS.routine_hu["sharp"] >= 4 * LIMITS.routine_hu["soft"]
    assert LIMITS.factor >= 2.0 and LIMITS.doubling_cm == 8.0 and LIMITS.slices["soft"] >= 40
    assert NoiseLimits.from_dict(LIMITS.to_dict()) == LIMITS
    # A head (Dw about 17 cm) is expected far quieter than a routine abdomen (30 cm); a larger patient is never
    # held to a looser ceiling than the routine one (exposure control keeps routine noise flat above the reference).
    assert LIMITS.expected_hu("soft", 17.0) < 0.45 * LIMITS.expected_hu("soft", 30.0)
    assert LIMITS.expected_hu("soft", 38.0) == LIMITS.expected_hu("soft", 30.0) == LIMITS.routine_hu["soft"]
    assert LIMITS.expected_hu("soft", None) == LIMITS.expected_hu("unknown", 30.0) == LIMITS.routine_hu["soft"]


def test_measure_follows_added_noise_and_reports_its_texture(real):
    image = decode_slice(scan([real["abdomen_j2k"]]).series[0].slices[0], LDCTIQAC)
    native, texture = measure(image)
    assert native is not None and 5.0 < native < 30.0 and texture is not None
    added, _ = measure(_noisy(image, 40.0, seed=1))
    assert added == pytest.approx(np.hypot(native, 40.0 * 0.87), rel=0.2)  # blocks of 8 keep most of blurred noise
    _, fine = measure(_noisy(image, 80.0, seed=2, blur=0.0))  # white noise: what a sharp kernel gives
    _, coarse = measure(_noisy(image, 80.0, seed=2, blur=1.5))
    assert fine is not None and coarse is not None and fine < 0.55 < coarse
    assert measure(np.zeros((512, 512), np.float32)) == (None, None)  # air only: nothing to measure


def test_region_and_thickness_scaling():
    assert region_of("HEAD") == region_of("brain") == "head"
    assert region_of("ABDOMEN") == region_of("") == region_of("CHEST_TO_PELVIS") == "body"
    assert region_of("HEADNECK") == region_of("HEAD_NECK") == region_of("SINUS") == "body"
    assert at_reference(20.0, 3.0) == 20.0 and at_reference(20.0, None) == 20.0
    assert at_reference(20.0, 0.75) == pytest.approx(10.0)  # thin slices are noisier at the same dose
    assert at_reference(20.0, -1.0) == at_reference(20.0, 0.0) == at_reference(20.0, float("nan")) == 20.0


def test_a_noisy_copy_of_a_real_series_alerts_on_noise_although_its_scores_pass(realct):
    series = scan([realct / "totalsegmentator"]).series[0]  # Siemens Br38f\3, 3 mm: never trained on
    images = [decode_slice(ref, LDCTIQAC) for ref in series.slices]
    original = _judged(series, images)
    assert not original.verdict.alert and original.noise is not None and not original.noise.above
    assert original.noise.kernel == "soft" and original.noise.noise_hu < 0.6 * original.noise.ceiling_hu
    assert original.physics is not None and 25.0 < original.physics.water_diameter_cm < 40.0
    assert original.physics.ctdi_vol_mgy == pytest.approx(18.54, abs=0.01) and original.physics.ssde_mgy is not None
    noisy = [_noisy(im, 1.5 * original.noise.ceiling_hu, seed=i) for i, im in enumerate(images)]
    result = _judged(series, noisy)
    assert result.verdict.alert and result.noise is not None and result.noise.above
    assert result.verdict.reason.startswith("noise ") and "ceiling for soft kernels, Dw" in result.verdict.reason
    assert "median score 3.60" in result.verdict.reason  # the score's own verdict stays in the reason
    off = _judged(series, noisy, AlertPolicy(noise_check=False))
    assert not off.verdict.alert and off.noise is not None and off.noise.above  # measured, not acted on


def test_sharp_kernels_have_their_own_ceiling_and_no_texture_exempts(realct):
    series = scan([realct / "totalsegmentator"]).series[0]
    images = [decode_slice(ref, LDCTIQAC) for ref in series.slices[:4]]
    series = replace(series, slices=series.slices[:4])
    soft = _judged(series, [_noisy(im, 80.0, seed=3, blur=0.0) for im in images])  # fine-grained noise
    assert soft.noise is not None and soft.noise.kernel == "soft" and soft.verdict.alert
    sharp = replace(series, slices=tuple(replace(r, kernel="B70f") for r in series.slices))
    judged = _judged(sharp, [_noisy(im, 80.0, seed=3) for im in images])
    assert judged.noise is not None and judged.noise.kernel == "sharp" and judged.noise.ceiling_hu > soft.noise.ceiling_hu


def test_every_routine_clinical_image_of_the_shared_folder_stays_under_its_ceiling(realct):
    from tfkt_edge.train.realct import training_slices

    checked = 0
    for s in training_slices():
        for series in scan([s.path]).series:
            images = [decode_slice(ref, LDCTIQAC) for ref in series.slices]
            stats = [image_stats(im) for im in images]
            dw = water_diameter_cm(series.slices, [x.water_diameter_px for x in stats], LDCTIQAC.size)
            finding = assess_noise(series.slices, [x.noise_hu for x in stats], [x.noise_texture for x in stats],
                                   kernel_class(series.slices[0].kernel), LIMITS, dw)
            if finding is not None:
                assert not finding.above and finding.slices_above == 0, (s.path, finding)
                checked += 1
    assert checked >= 60


def test_json_reports_noise_and_physics_and_the_switch_turns_the_check_off(real, tmp_path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["score", str(real["abdomen_j2k"]), "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (series,) = json.loads(out.read_text())["series"]
    assert series["noise"]["kernel_class"] == "soft" and series["noise"]["above"] is False
    assert series["noise"]["ceiling_of"] == "model card"
    assert 0 < series["noise"]["noise_hu"] < series["noise"]["ceiling_hu"]
    assert 20.0 < series["physics"]["water_diameter_cm"] < 40.0 and series["physics"]["streak_index"] < 15.0
    result = runner.invoke(app, ["score", str(real["abdomen_j2k"]), "--no-noise-check", "-q"])
    assert result.exit_code == 0, result.output


def _with_card(tmp_path, change):
    import onnx

    from tfkt_edge.model.model_file import CARD_KEY

    model = onnx.load(DEFAULT_MODEL)
    entry = next(p for p in model.metadata_props if p.key == CARD_KEY)
    card = json.loads(entry.value)
    entry.value = json.dumps(change(card))
    onnx.save(model, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def test_a_model_file_with_malformed_noise_figures_is_refused_when_opened(real, tmp_path):
    for bad in ({"ceiling_hu": {"body": "x"}}, {"format": 2, "routine_hu": {"soft": -1.0}}, [1, 2],
                {"format": 2, "routine_hu": {"soft": 17.0, "sharp": 80.0}, "reference_dw_cm": 30, "doubling_cm": 1e9}):
        model = _with_card(tmp_path, lambda card, bad=bad: {**card, "noise": bad})
        result = runner.invoke(app, ["score", str(real["abdomen_j2k"]), "--model", str(model)])
        assert result.exit_code == 2 and "noise figures are malformed" in result.output, result.output


def test_a_model_file_without_noise_figures_is_held_to_the_physics_defaults_and_says_so(real, tmp_path):
    model = _with_card(tmp_path, lambda card: {k: v for k, v in card.items() if k != "noise"})
    result = runner.invoke(app, ["score", str(real["abdomen_j2k"]), "--model", str(model), "--format", "json"])
    assert result.exit_code == 0, result.output
    (series,) = json.loads(result.stdout)["series"]
    assert series["noise"]["ceiling_of"] == "physics defaults" and series["noise"]["ceiling_hu"] > 0


def test_the_noise_texture_is_the_nps_mean_frequency_and_follows_the_kernel(real, realct):
    """Fine (white) noise moves the NPS mean frequency up, coarse noise down; on real scans a sharp kernel's is higher
    than a soft kernel's; the series figure is in cycles/mm in the JSON physics."""
    from tfkt_edge.verdict.noise import nps_mean_frequency

    image = decode_slice(scan([real["abdomen_j2k"]]).series[0].slices[0], LDCTIQAC)
    fine = nps_mean_frequency(_noisy(image, 60.0, seed=3, blur=0.0))
    coarse = nps_mean_frequency(_noisy(image, 60.0, seed=3, blur=1.5))
    assert fine is not None and coarse is not None and fine > 0.3 > coarse
    soft = realct / "saltyjoke" / "A058062" / "axial" / "19001231-084.dcm"  # GE STANDARD
    sharp = realct / "pylibjpeg-data" / "TOSHIBA_J2K_OpenJPEGv2Regression.dcm"  # Toshiba FC52
    result = runner.invoke(app, ["score", str(soft), str(sharp), "--format", "json"])
    figures = {s["kernel"]: s["physics"]["nps_mean_per_mm"] for s in json.loads(result.stdout)["series"]}
    assert 0.1 < figures["STANDARD"] < 0.35 < figures["FC52"] < 1.5
