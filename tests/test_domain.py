"""The validated-domain check: header facts and image statistics, on real CT and real phantom scans."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from tfkt_edge.backends import create_backend
from tfkt_edge.cli.main import app
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.model.preprocess import preprocess
from tfkt_edge.verdict.domain import Domain, check_series, image_stats, kernel_class

runner = CliRunner()


@pytest.mark.parametrize("kernel, expected", [
    ("STANDARD", "soft"), ("BONE", "sharp"), ("LUNG", "sharp"), ("Br38f\\3", "soft"), ("Br59s\\3", "sharp"),
    ("B30s", "soft"), ("B70f", "sharp"), ("FC07", "soft"), ("FC17", "soft"), ("FC30", "sharp"), ("FC52", "sharp"),
    ("FC80", "sharp"), ("C", "soft"), ("YB", "sharp"), ("", "unknown"), ("11", "unknown"),
])
def test_kernel_classes_by_vendor_naming(kernel, expected):
    assert kernel_class(kernel) == expected


@pytest.fixture(scope="module")
def domain() -> Domain:
    found = create_backend("onnxruntime", DEFAULT_MODEL).model.domain
    assert found is not None, "the shipped model's card must carry its validated domain"
    return found


def _status(paths, domain):
    series = scan(paths).series[0]
    stats = [image_stats(preprocess(load_hu(ref))) for ref in series.slices]
    return check_series(series.slices, stats, domain)


def test_domain_round_trips_through_json(domain):
    assert Domain.from_dict(json.loads(domain.to_json())) == domain
    assert Domain.from_dict({"min_body_fraction": 0.1, "unknown_key": 1}).min_body_fraction == 0.1


def test_every_real_clinical_slice_is_inside(realct, domain):
    from tfkt_edge.train.realct import training_slices

    for s in training_slices(realct):
        status = _status([s.path], domain)
        assert status.inside, (str(s.path), status.reasons)


@pytest.mark.parametrize("folder, word", [
    ("rt-utils", "phantom"),  # GE daily-QA water cylinder, "PHANTOM" in the header
    ("actilib/nps", "uniform"),  # photon-counting uniform section, header says CHEST
    ("actilib/ttf", "uniform"),  # contrast-insert section
    ("actilib/gnl", "body fills"),  # hand phantom, SHOULDER (judged with its known kernel), 0.12 mm pixels
])
def test_real_phantom_scans_are_outside(realct, domain, folder, word):
    status = _status(sorted((realct / folder).glob("*.dcm")), domain)
    assert not status.inside
    assert any(word in reason for reason in status.reasons), status.reasons


def test_empty_series_stats_and_no_domain_check_nothing():
    assert check_series([], [], Domain()).inside
    body = np.zeros((512, 512), np.float32)  # all air
    assert image_stats(body).body_fraction == 0.0


@pytest.mark.parametrize("change, word", [
    ({"PatientName": "QA^PHANTOM"}, "phantom"),
    ({"BodyPartExamined": "KNEE"}, "KNEE"),
    ({"SliceThickness": 12.0}, "thick"),  # routine widths are 0.5-10 mm
])
def test_header_facts_put_a_clinical_slice_outside(real, tmp_path, domain, change, word):
    ds = pydicom.dcmread(real["abdomen_j2k"])
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    path = tmp_path / "slice.dcm"
    ds.save_as(path)
    status = _status([path], domain)
    assert not status.inside and word in "; ".join(status.reasons)


def test_outside_is_its_own_status_and_exit_code_in_every_format(realct, tmp_path):
    phantom = str(realct / "rt-utils")
    result = runner.invoke(app, ["score", phantom, "--format", "json"])
    assert result.exit_code == 3, result.output
    series = json.loads(result.stdout)["series"][0]
    assert series["status"] == "outside-domain" and series["alert"] is False
    assert series["domain"]["status"] == "outside" and series["domain"]["reasons"]
    assert series["reason"].startswith("outside the validated domain")
    csv_out = runner.invoke(app, ["score", phantom, "--format", "csv"]).stdout
    assert "outside-domain" in csv_out.splitlines()[1]
    table = runner.invoke(app, ["score", phantom], terminal_width=200).stdout
    assert "OUTSIDE DOMAIN" in table
    report = tmp_path / "r.html"
    assert runner.invoke(app, ["report", phantom, "-o", str(report)]).exit_code == 3
    assert "OUTSIDE DOMAIN" in report.read_text()
    # A phantom beside a degraded clinical slice: the alert wins the exit code.
    from tfkt_edge.examples import EXAMPLES

    assert runner.invoke(app, ["score", phantom, str(EXAMPLES / "degraded")]).exit_code == 1


def test_extreme_noise_is_judged_not_read_as_missing_anatomy(realct, tmp_path):
    """A 2%-dose copy of the 0.5 mm FC80 head slice (about 550 HU of noise) is inside the domain and alerts.
    At the 4x pooling of models up to 0.3.1 its soft tissue fell below the limit: "not patient anatomy",
    outside the domain, no alert."""
    from tfkt_edge.model.preprocess import LDCTIQAC, pad_square
    from tfkt_edge.pipeline.run import score_paths
    from tfkt_edge.train.ctnoise import TexturedSimulator
    from tfkt_edge.train.ctsim import FULL_VIEWS
    from tfkt_edge.train.ladders import _write_copy
    from tfkt_edge.verdict.policy import ALERT

    (series,) = scan([realct / "pylibjpeg-data" / "ELSCINT1_JP2vsJ2K.dcm"]).series
    ref = series.slices[0]
    assert ref.kernel == "FC80" and ref.thickness == 0.5
    hu = pad_square(load_hu(ref), -1000.0)
    assert hu.shape == load_hu(ref).shape  # square already: the copy is the whole image
    simulator = TexturedSimulator(hu, ref.pixel_spacing or 0.7, np.random.default_rng(11))
    noisy, _, _ = simulator.degrade(hu, simulator.prepare(hu), 0.02, FULL_VIEWS)
    _write_copy(ref.path, noisy, tmp_path / "copy.dcm", pydicom.uid.generate_uid(), 0.02)
    backend = create_backend("onnxruntime", DEFAULT_MODEL)
    assert backend.model.domain.pool == 8
    (result,) = score_paths([tmp_path], backend).results
    assert result.domain.inside, result.domain.reasons
    assert result.verdict.status == ALERT, result.verdict.reason
    image = preprocess(load_hu(scan([tmp_path]).series[0].slices[0]), LDCTIQAC)
    assert image_stats(image, LDCTIQAC, pool=4).tissue_fraction < 0.33  # 0.3.1's limit, measured at 4x


def test_a_card_without_a_pool_keeps_the_4x_pooling_its_limits_were_measured_with():
    card = json.loads(Domain(min_tissue_fraction=0.33).to_json())
    del card["pool"]
    assert Domain.from_dict(card).pool == 4
    assert Domain.from_dict(json.loads(Domain().to_json())).pool == 8
