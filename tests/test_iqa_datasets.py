"""Dataset loaders against tiny folders in each dataset's exact layout."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from tfkt_edge.errors import InputError
from tfkt_edge.evaluation.ldctiqac import find_labelled_folder, model_input
from tfkt_edge.train.iqa_datasets import NATURAL_LOADERS, DatasetLayoutError

from . import iqa_fixtures


@pytest.mark.parametrize("name, labels, families", [
    ("kadid10k", [3.5, 0.9, 2.8, 2.1], ["blur", "blur", "colour", "noise"]),
    ("koniq10k", [2.9, 1.2, 0.4], [None, None, None]),
    ("tid2013", [6.3 * 4 / 9, 2.7 * 4 / 9, 4.5 * 4 / 9], ["noise", "colour", "compression"]),
    ("livec", [63 / 25, 21.5 / 25], [None, None]),
    ("spaq", [42.3 / 25, 80 / 25], [None, None]),
])
def test_loader_reads_the_real_layout_and_rescales_to_0_4(tmp_path, name, labels, families):
    root = getattr(iqa_fixtures, name)(tmp_path / name)
    images = NATURAL_LOADERS[name](root)
    np.testing.assert_allclose(images.labels, labels, rtol=1e-6)
    assert list(images.families) == families
    batch = images.images(range(len(images)))
    assert batch.shape == (len(labels), 512, 512) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0 and batch.std() > 0.05


def test_task_focused_selection_drops_colour_types_but_keeps_authentic_datasets(tmp_path):
    kadid = NATURAL_LOADERS["kadid10k"](iqa_fixtures.kadid10k(tmp_path / "k"))
    assert list(kadid.select("task-focused").families) == ["blur", "blur", "noise"]
    assert len(kadid.select("all")) == 4
    koniq = NATURAL_LOADERS["koniq10k"](iqa_fixtures.koniq10k(tmp_path / "q"))
    assert len(koniq.select("task-focused")) == 3


@pytest.mark.parametrize("name", sorted(NATURAL_LOADERS))
def test_missing_file_is_named_with_the_expected_layout(tmp_path, name):
    root = getattr(iqa_fixtures, name)(tmp_path / name)
    for image in [p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".bmp")]:
        image.unlink()
    with pytest.raises(DatasetLayoutError, match="missing .*expected layout"):
        NATURAL_LOADERS[name](root)
    with pytest.raises(DatasetLayoutError, match="expected layout"):
        NATURAL_LOADERS[name](tmp_path / "empty")


@pytest.mark.parametrize("test_layout", [False, True])
def test_ldctiqac_layouts_round_trip_through_the_shared_preprocessing(tmp_path, real, test_layout):
    from tfkt_edge.dicom import load_hu, scan

    hu = load_hu(scan([real["abdomen_j2k"]]).series[0].slices[0])
    slices = iqa_fixtures.noisy_ct_slices(hu, (0.0, 40.0))
    folder = find_labelled_folder(iqa_fixtures.ldctiqac(tmp_path / "d", slices, [3.8, 1.6], test_layout))
    assert list(folder.labels.values()) == [3.8, 1.6]
    np.testing.assert_allclose(model_input(folder.paths[0]), slices[0], atol=1e-5)


def test_ldctiqac_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="image/\\*.tif with train.json"):
        find_labelled_folder(tmp_path)
    (tmp_path / "image").mkdir()
    (tmp_path / "train.json").write_text('{"0000.tif": 2.8}')
    with pytest.raises(InputError, match="0000.tif.*does not exist"):
        find_labelled_folder(tmp_path)
    (tmp_path / "train.json").write_text('{"0000.tif": 7}')
    with pytest.raises(InputError, match="not a number in 0..4"):
        find_labelled_folder(tmp_path)


def test_unreadable_image_is_named(tmp_path):
    root = iqa_fixtures.kadid10k(tmp_path / "k")
    (root / "images" / "I01_01_01.png").write_bytes(b"not a png")
    images = NATURAL_LOADERS["kadid10k"](root)
    with pytest.raises(InputError, match="I01_01_01.png: not a readable image"):
        images.images([0])
