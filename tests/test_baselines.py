"""Per-protocol baselines: learnt from accepted real series, applied by the alert policy, refused when wrong."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.dicom import scan
from tfkt_edge.errors import InputError
from tfkt_edge.verdict.baselines import Baseline, Baselines, Protocol, learn, load, save
from tfkt_edge.verdict.judge import judge
from tfkt_edge.verdict.policy import AlertPolicy
from tfkt_edge.verdict.result import SliceScore

runner = CliRunner()
P = Protocol("CT1", "ABD 3MM", "FC17", 3.0)


def test_learn_needs_enough_series_and_sets_the_alert_line_below_the_normal_range():
    baselines = learn([(P, 3.5), (P, 3.6), (P, 3.7), (Protocol("CT2", "X", "B", 1.0), 3.0)], "m 1")
    (entry,) = baselines.entries  # CT2 has one series only
    assert entry.protocol == P and entry.n_series == 3 and entry.median == 3.6
    assert entry.low == pytest.approx(3.6 - max(3 * 1.4826 * 0.1, 0.5))


def test_file_round_trip_and_one_line_errors(tmp_path):
    path = save(learn([(P, 1.7), (P, 1.8), (P, 1.9)], "m 1"), tmp_path / "b.json")
    assert load(path).entries == learn([(P, 1.7), (P, 1.8), (P, 1.9)], "m 1").entries
    bad = tmp_path / "bad.json"
    for text in ("not json", json.dumps({"format": "other"}), json.dumps({"format": "tfkt-edge-baselines/1"})):
        bad.write_text(text)
        with pytest.raises(InputError, match="not a tfkt-edge baseline file"):
            load(bad)
    with pytest.raises(InputError, match="cannot read"):
        load(tmp_path / "missing.json")
    with pytest.raises(InputError, match="calibrated with model 'm 1'"):
        load(path).require_model("tfkt_edge_s 9")


def test_judge_uses_the_protocol_line_instead_of_the_threshold(real):
    series = scan([real["abdomen_j2k"]]).series[0]
    protocol = Protocol.of(series)
    scored = [SliceScore(ref, 1.7) for ref in series.slices]
    fixed = judge(series, scored, AlertPolicy())
    assert fixed.verdict.alert  # 1.7 < 2.0
    sharp_protocol = Baselines("m", (Baseline(protocol, 5, 1.8, 0.05, 1.3),))
    calibrated = judge(series, scored, AlertPolicy(baselines=sharp_protocol))
    assert not calibrated.verdict.alert and "protocol baseline" in calibrated.verdict.reason
    strict = Baselines("m", (Baseline(protocol, 5, 3.8, 0.05, 3.3),))
    assert judge(series, [SliceScore(ref, 3.0) for ref in series.slices], AlertPolicy(baselines=strict)).verdict.alert
    other = Baselines("m", (Baseline(Protocol("X", "Y", "Z", 1.0), 5, 1.8, 0.05, 1.3),))
    assert judge(series, scored, AlertPolicy(baselines=other)).verdict.alert  # no baseline for this protocol


def _series_copies(source, folder, n, description):
    """n copies of a real slice, each its own series of one protocol."""
    paths = []
    for i in range(n):
        ds = pydicom.dcmread(source)
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesDescription, ds.StationName = description, "CT1"
        paths.append(folder / f"s{i}.dcm")
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(paths[-1])
    return paths


def test_calibrate_then_score_with_baselines_on_real_series(real, tmp_path):
    accepted = tmp_path / "accepted"
    _series_copies(real["abdomen_j2k"], accepted, 3, "ABDOMEN ROUTINE")
    out = tmp_path / "baselines.json"
    result = runner.invoke(app, ["calibrate", str(accepted), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["protocols"]) == 1 and data["protocols"][0]["n_series"] == 3
    assert data["protocols"][0]["protocol"]["description"] == "ABDOMEN ROUTINE"
    new = tmp_path / "new"
    _series_copies(real["abdomen_j2k"], new, 1, "ABDOMEN ROUTINE")
    scored = runner.invoke(app, ["score", str(new), "--baselines", str(out), "--format", "json"])
    assert scored.exit_code == 0, scored.output
    assert "protocol baseline" in json.loads(scored.stdout)["series"][0]["reason"]


def test_calibrate_and_score_refuse_bad_input(tmp_path, real):
    assert runner.invoke(app, ["calibrate"]).exit_code == 2
    bad = tmp_path / "b.json"
    bad.write_text("{")
    result = runner.invoke(app, ["score", str(real["abdomen_j2k"]), "--baselines", str(bad)])
    assert result.exit_code == 2 and "not a tfkt-edge baseline file" in result.output
    save(Baselines("another-model 0", ()), bad)
    result = runner.invoke(app, ["score", str(real["abdomen_j2k"]), "--baselines", str(bad)])
    assert result.exit_code == 2 and "calibrate again" in result.output
    assert runner.invoke(app, ["calibrate", "--db", str(tmp_path / "none.sqlite")]).exit_code == 2


def test_evaluate_series_with_baselines_judges_each_protocol_against_its_normal_range(real, tmp_path):
    """A copy with 35 HU of added noise scores above the fixed line (a miss), below its protocol's normal
    range once the protocol is calibrated (caught). The noise check, which would catch it on its own, is off:
    this is the score's baseline at work."""
    _series_copies(real["abdomen_j2k"], tmp_path / "accepted", 3, "ABDOMEN ROUTINE")
    baselines = tmp_path / "baselines.json"
    assert runner.invoke(app, ["calibrate", str(tmp_path / "accepted"), "-o", str(baselines)]).exit_code == 0
    (clean,) = _series_copies(real["abdomen_j2k"], tmp_path / "clean", 1, "ABDOMEN ROUTINE")
    (noisy,) = _series_copies(real["abdomen_j2k"], tmp_path / "noisy", 1, "ABDOMEN ROUTINE")
    ds = pydicom.dcmread(noisy)
    stored = ds.pixel_array.astype(np.float64) + np.random.default_rng(0).normal(0, 35 / float(ds.RescaleSlope), ds.pixel_array.shape)
    limits = np.iinfo(ds.pixel_array.dtype)
    ds.PixelData = np.clip(np.round(stored), limits.min, limits.max).astype(limits.dtype).tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(noisy)
    (tmp_path / "series.csv").write_text("path,source,ladder,dose,label,expected\n"
                                         f"{clean},abdomen,a,1.0,4.0,pass\n{noisy},abdomen,a,0.1,1.1,alert\n")
    misses = {}
    for extra in ([], ["--baselines", str(baselines)]):
        out = tmp_path / f"eval{len(extra)}"
        result = runner.invoke(app, ["evaluate", "--series", str(tmp_path), "-o", str(out), "--no-noise-check", *extra])
        assert result.exit_code == 0, result.output
        figures = json.loads((out / "series.json").read_text())["summary"]["all"]
        assert figures["false_alerts"] == 0
        misses[bool(extra)] = figures["misses"]
    assert misses == {False: 1, True: 0}
    result = runner.invoke(app, ["evaluate", "--data", str(tmp_path), "--baselines", str(baselines)])
    assert result.exit_code == 2 and "--baselines applies to --series" in result.output


def test_a_calibrated_quiet_protocol_is_held_to_its_own_noise(realct, tmp_path):
    """A lumbar spine protocol (9 HU of routine noise at 3 mm): a copy with soft-textured noise that an ordinary
    body scan would have (about 25 HU) is under the body ceiling, but above twice the protocol's accepted noise."""
    from scipy.ndimage import gaussian_filter

    source = realct / "fo-dicom" / "GH1308.dcm"
    _series_copies(source, tmp_path / "accepted", 3, "L-SPINE")
    baselines = tmp_path / "baselines.json"
    result = runner.invoke(app, ["calibrate", str(tmp_path / "accepted"), "-o", str(baselines)])
    assert result.exit_code == 0, result.output
    (entry,) = load(baselines).entries
    assert entry.noise_series == 3 and entry.noise_hu is not None and 5.0 < entry.noise_hu < 12.0
    (noisy,) = _series_copies(source, tmp_path / "noisy", 1, "L-SPINE")
    ds = pydicom.dcmread(noisy)
    grain = gaussian_filter(np.random.default_rng(1).normal(size=ds.pixel_array.shape), 1.0)
    stored = ds.pixel_array.astype(np.float64) + grain / grain.std() * 28.0 / float(ds.RescaleSlope)
    limits = np.iinfo(ds.pixel_array.dtype)
    ds.PixelData = np.clip(np.round(stored), limits.min, limits.max).astype(limits.dtype).tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(noisy)
    plain = json.loads(runner.invoke(app, ["score", str(noisy), "--format", "json"]).stdout)["series"][0]
    assert plain["noise"]["ceiling_of"] != "protocol" and not plain["noise"]["above"]
    assert entry.noise_ceiling_hu < plain["noise"]["noise_hu"] < plain["noise"]["ceiling_hu"]
    result = runner.invoke(app, ["score", str(noisy), "--format", "json", "--baselines", str(baselines)])
    assert result.exit_code == 1, result.output
    series = json.loads(result.stdout)["series"][0]
    assert series["status"] == "alert" and series["noise"]["ceiling_of"] == "protocol" and series["noise"]["above"]
    assert f"ceiling for this protocol (2x its accepted {entry.noise_hu:.1f} HU" in series["reason"]
    (clean,) = _series_copies(source, tmp_path / "clean", 1, "L-SPINE")
    result = runner.invoke(app, ["score", str(clean), "--format", "json", "--baselines", str(baselines)])
    assert result.exit_code == 0 and not json.loads(result.stdout)["series"][0]["noise"]["above"]


def test_baseline_files_without_noise_still_load_and_bad_noise_is_refused(tmp_path):
    path = save(learn([(P, 3.5), (P, 3.6), (P, 3.7)], "m 1"), tmp_path / "b.json")
    (entry,) = load(path).entries
    assert entry.noise_hu is None and entry.noise_ceiling_hu is None
    data = json.loads(path.read_text())
    for key in ("noise_hu", "noise_series"):
        del data["protocols"][0][key]  # a file written before noise was recorded
    path.write_text(json.dumps(data))
    assert load(path).entries[0].noise_hu is None
    data["protocols"][0]["noise_hu"] = -3
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="noise -3 HU is not a positive figure"):
        load(path)
    noisy = learn([(P, 3.5, 10.0), (P, 3.6, 12.0), (P, 3.7, None)], "m 1")
    assert noisy.entries[0].noise_hu is None  # two measured series of three: not enough for a noise baseline
    assert learn([(P, 3.5, 10.0), (P, 3.6, 12.0), (P, 3.7, 11.0)], "m 1").entries[0].noise_ceiling_hu == 22.0
