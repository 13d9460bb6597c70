"""The offline natural-image corpus: deterministic, labels falling with distortion level."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("torch")

from tfkt_edge.train.distortions import DISTORTIONS, selected
from tfkt_edge.train.natural_corpus import LEVELS, build_natural_corpus, distort, load_natural_corpus, load_photo, ssim_label, to_model_input


@pytest.fixture(scope="module")
def astronaut():
    photo = load_photo("astronaut.png")
    return photo, to_model_input(photo)


@pytest.mark.parametrize("kind", DISTORTIONS, ids=lambda d: d.name)
def test_label_falls_with_level(astronaut, kind):
    photo, pristine = astronaut
    labels = [ssim_label(to_model_input(distort(photo, kind, level, seed=0, index=0)), pristine) for level in LEVELS]
    assert all(0.0 <= v <= 4.0 for v in labels)
    assert all(later < earlier for earlier, later in zip(labels, labels[1:])), labels


def test_corpus_is_deterministic_for_a_seed_and_differs_across_seeds(tmp_path):
    kinds = tuple(d for d in DISTORTIONS if d.name in ("white_noise", "color_saturation"))
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        build_natural_corpus(tmp_path / name, seed=seed, photos=("coffee.png",), kinds=kinds, workers=1)
    a, b, c = (np.load(tmp_path / n / "images.npy") for n in "abc")
    assert a.shape == (1 + 2 * len(LEVELS), 512, 512)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # the noise draws follow the seed
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert index["labels"][0] == 4.0 and index["families"][0] == ""  # the pristine reference
    images = load_natural_corpus(tmp_path / "a")
    assert len(images.select("task-focused")) == 1 + len(LEVELS)  # colour saturation dropped, noise kept
    assert len(images.select("all")) == len(images)


def test_selection_rule():
    assert selected("noise", "task-focused") and selected(None, "task-focused")
    assert not selected("colour", "task-focused") and selected("colour", "all")
    with pytest.raises(ValueError, match="unknown selection"):
        selected("noise", "some")
