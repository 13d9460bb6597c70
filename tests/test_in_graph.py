"""The stored-input twin of the shipped model: the window and the statistics in the graph, held to numpy on real CT."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from tfkt_edge.backends import create_backend
from tfkt_edge.cli.main import app
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model.model_file import CARD_KEY, DEFAULT_MODEL, STATS_OUTPUT, STORED_MODEL
from tfkt_edge.model.preprocess import LDCTIQAC, preprocess
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.pipeline.stored import as_int16, as_stored, takes_raw
from tfkt_edge.verdict.domain import image_stats
from tfkt_edge.verdict.policy import AlertPolicy

# Relative differences measured on ../shared/realct (ONNX Runtime against numpy, float32 both): noise at most
# 0.66% and texture 0.46%, both on a phantom slice of 3.3 HU noise (noise 0.013% at the median); the limits
# leave room for another CPU's summation order.
LIMITS = {"noise_hu": 0.01, "noise_texture": 0.02}
runner = CliRunner()


@pytest.fixture(scope="module")
def twin():
    backend = create_backend("onnxruntime", STORED_MODEL)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def image_model():
    backend = create_backend("onnxruntime", DEFAULT_MODEL)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def raw_slices(realct):
    refs = [s for series in scan([realct]).series for s in series.slices]
    return [(ref, as_stored(ref, LDCTIQAC)) for ref in refs if takes_raw(ref, LDCTIQAC)]


def test_the_cpu_default_is_the_twin_and_carries_the_same_card(twin):
    assert create_backend("onnxruntime").model.path == STORED_MODEL and twin.takes_stored
    import onnx

    card = json.loads(next(p.value for p in onnx.load(str(STORED_MODEL)).metadata_props if p.key == CARD_KEY))
    assert card == json.loads(DEFAULT_MODEL.with_suffix(".card.json").read_text())


def test_graph_statistics_match_numpy_on_real_ct(twin, raw_slices):
    assert len(raw_slices) >= 60
    stored = np.stack([x[0] for _, x in raw_slices])[:, None]
    rescale = np.array([x[1] for _, x in raw_slices], dtype=np.float32)
    _, stats = twin.infer_stored(stored, rescale)
    for (ref, _), row in zip(raw_slices, stats):
        reference = image_stats(preprocess(load_hu(ref), LDCTIQAC), LDCTIQAC, twin.model.stats_pool, texture=False)
        for name, value in zip(STATS_OUTPUT, row):
            expected = getattr(reference, name)
            if expected is None:
                assert np.isnan(value), (ref.path.name, name, value)
                continue
            assert abs(value - expected) <= LIMITS.get(name, 1e-4) * max(abs(expected), 1.0), (ref.path.name, name, value, expected)


def test_twin_scores_match_the_image_model(twin, image_model, raw_slices):
    stored = np.stack([x[0] for _, x in raw_slices])[:, None]
    rescale = np.array([x[1] for _, x in raw_slices], dtype=np.float32)
    scores, _ = twin.infer_stored(stored, rescale)
    images = np.stack([preprocess(load_hu(ref), LDCTIQAC) for ref, _ in raw_slices])[:, None]
    assert np.abs(scores - image_model.infer(images)).max() < 1e-3
    # Preprocessed slices handed to the twin as whole HU (its `infer`): within 1e-3 too.
    assert np.abs(twin.infer(images) - image_model.infer(images)).max() < 1e-3


def test_every_real_series_gets_the_same_verdict_from_both_models(realct, twin, image_model):
    """All of ../shared/realct (other sizes, sharp kernels, compressed and multi-frame files take the numpy
    path): the same verdicts, the same skips, scores within 1e-3, noise within 1%."""
    a, b = score_paths([realct], twin, AlertPolicy()), score_paths([realct], image_model, AlertPolicy())
    assert sorted(map(str, a.skipped)) == sorted(map(str, b.skipped))
    by_uid = {r.series.series_instance_uid: r for r in b.results}
    assert len(a.results) == len(b.results) >= 70
    for ours in a.results:
        theirs = by_uid[ours.series.series_instance_uid]
        assert ours.verdict.status == theirs.verdict.status, ours.series.description
        assert np.abs(ours.scores - theirs.scores).max() < 1e-3
        if theirs.noise is not None:
            assert abs(ours.noise.noise_hu - theirs.noise.noise_hu) <= 0.01 * theirs.noise.noise_hu + 0.01


def test_unsigned_pixels_above_int16_keep_their_hu():
    stored = np.array([[0, 1000, 40000, 65535]], dtype=np.uint16)
    pixels, slope, intercept = as_int16(stored, 0.5, -1024.0)
    assert pixels.dtype == np.int16
    np.testing.assert_array_equal(pixels * np.float64(slope) + intercept, stored * 0.5 - 1024.0)
    small = np.array([[0, 4095]], dtype=np.uint16)
    assert as_int16(small, 1.0, -1024.0)[0].tolist() == [[0, 4095]]
    assert as_int16(np.array([[0, 70000]], dtype=np.int32), 1.0, 0.0) is None  # not 16 bits: the numpy path


def test_a_real_unsigned_file_scores_alike_through_both_paths(tmp_path, twin, image_model):
    """A real 512x512 slice rewritten with unsigned pixels above 32767 (a scanner that stores HU + 33768):
    the twin reads it through the shift and scores it as the image model does."""
    from tfkt_edge.examples import EXAMPLES

    ref = scan([EXAMPLES / "clinical"]).series[0].slices[0]
    ds = pydicom.dcmread(ref.path)
    hu = load_hu(ref)
    ds.PixelRepresentation, ds.RescaleSlope, ds.RescaleIntercept = 0, 1, -33768
    ds.PixelData = (np.rint(hu) + 33768).astype(np.uint16).tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(tmp_path / "unsigned.dcm", enforce_file_format=True)
    a, b = score_paths([tmp_path], twin, AlertPolicy()), score_paths([tmp_path], image_model, AlertPolicy())
    assert a.results[0].verdict.status == b.results[0].verdict.status
    assert abs(float(a.results[0].scores[0]) - float(b.results[0].scores[0])) < 1e-3
    assert a.results[0].slices[0].stats.noise_hu == pytest.approx(b.results[0].slices[0].stats.noise_hu, rel=0.01)


def test_the_export_reproduces_the_shipped_twin(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxslim")
    from tfkt_edge.examples import EXAMPLES
    from tfkt_edge.export.in_graph import write_twin
    from tfkt_edge.model.model_file import ASSETS

    out = tmp_path / "twin.onnx"
    differences = write_twin(ASSETS / "tfkt_edge_s.pt", DEFAULT_MODEL, out, [EXAMPLES])
    assert differences["score"] < 1e-5
    made, shipped = create_backend("onnxruntime", out), create_backend("onnxruntime", STORED_MODEL)
    image = preprocess(load_hu(scan([EXAMPLES / "clinical"]).series[0].slices[0]), LDCTIQAC)[None, None]
    assert abs(float(made.infer(image)[0]) - float(shipped.infer(image)[0])) < 1e-5


def test_the_texture_figures_are_taken_on_the_first_slice_of_each_series_and_every_8th_then_32nd(realct, twin):
    """The reported texture figures of a real 20-slice series come from three of its slices (the 1st, 9th and
    17th read); the series medians are those slices' medians, and every slice has the figures the verdict
    decides on. A long series takes them every 8th slice up to the 64th, then every 32nd."""
    from tfkt_edge.dicom import SliceRef
    from tfkt_edge.pipeline.decode import TextureSampler
    from tfkt_edge.verdict.noise import nps_mean_frequency
    from tfkt_edge.verdict.streaks import streak_index

    sampler = TextureSampler()
    refs = [SliceRef.__new__(SliceRef) for _ in range(20)]
    for k, ref in enumerate(refs):
        object.__setattr__(ref, "series_instance_uid", "a" if k % 2 == 0 else "b")  # two series, interleaved
    picked = [k for k, ref in enumerate(refs) if sampler(ref)]
    assert picked == [0, 1, 16, 17]  # the 1st and 9th of each: slices 0 and 16 of "a", 1 and 17 of "b"
    long = SliceRef.__new__(SliceRef)
    object.__setattr__(long, "series_instance_uid", "c")
    assert [k for k in range(300) if sampler(long)] == list(range(0, 64, 8)) + list(range(64, 300, 32))

    run = score_paths([realct / "totalsegmentator"], twin, AlertPolicy())
    (result,) = run.results
    stats = [s.stats for s in result.slices]
    assert len(stats) == 20 and all(s.noise_hu is not None and s.water_diameter_px is not None for s in stats)
    taken = [k for k, s in enumerate(stats) if s.streak_index is not None]
    assert len(taken) == 3 and all(stats[k].nps_mean_frequency is not None for k in taken)
    images = [preprocess(load_hu(result.slices[k].ref), LDCTIQAC) for k in taken]
    assert result.physics.streak_index == pytest.approx(float(np.median([streak_index(x) for x in images])), rel=1e-4)
    assert [stats[k].nps_mean_frequency for k in taken] == pytest.approx([nps_mean_frequency(x) for x in images], rel=1e-5)


def test_a_run_whose_output_shows_no_texture_figure_takes_none_and_judges_the_same(realct, twin):
    """Without texture (the table, CSV and baselines show none) no slice gets a streak index or NPS figure; the
    scores, every statistic the verdict decides on and the verdict are those of a run with them. The JSON
    document (`score --format json`) has them."""
    paths = [realct / "totalsegmentator", realct / "saltyjoke" / "A058062" / "axial"]
    with_texture, without = (score_paths(paths, twin, AlertPolicy(), texture=t) for t in (True, False))
    assert len(with_texture.results) == len(without.results) >= 2
    for a, b in zip(with_texture.results, without.results):
        assert a.series.series_instance_uid == b.series.series_instance_uid and a.verdict == b.verdict
        assert a.physics.streak_index is not None and b.physics.streak_index is None and b.physics.nps_mean_per_mm is None
        assert [s.score for s in a.slices] == [s.score for s in b.slices]
        assert [replace(s.stats, streak_index=None, nps_mean_frequency=None) for s in a.slices] == [s.stats for s in b.slices]
    in_processes = score_paths(paths, twin, AlertPolicy(), decoders="processes", texture=False)  # read there too
    assert [r.verdict.status for r in in_processes.results] == [r.verdict.status for r in without.results]
    assert all(s.stats.streak_index is None and s.stats.nps_mean_frequency is None
               for r in in_processes.results for s in r.slices)
    shown = runner.invoke(app, ["score", str(paths[0]), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["series"][0]["physics"]["streak_index"] is not None


def test_stored_values_are_read_straight_into_a_batch_row_with_their_hu(realct):
    """Every uncompressed 16-bit real file, read into an int16 row of its shape: the HU of `load_hu` (signed and
    unsigned, 16 and 12 bits stored)."""
    from tfkt_edge.dicom import read_slices
    from tfkt_edge.dicom.pixels import read_int16_into

    refs = [ref for path in sorted(realct.rglob("*.dcm")) if isinstance(found := read_slices(path), list)
            for ref in found if ref.pixel_dtype in ("<i2", "<u2")]
    assert {(ref.pixel_dtype, ref.bits_stored) for ref in refs} == {("<i2", 16), ("<u2", 16), ("<u2", 12)}
    for ref in refs:
        row = np.empty((ref.rows, ref.columns), dtype=np.int16)
        slope, intercept = read_int16_into(ref, row)
        np.testing.assert_allclose(row * np.float64(slope) + intercept, load_hu(ref), atol=1e-3)
    assert read_int16_into(refs[0], np.empty((64, 64), dtype=np.int16)) is None  # not its shape: decoded instead


def test_a_rewritten_or_cut_file_is_refused_not_read_at_a_stale_offset(tmp_path, real):
    import shutil

    from tfkt_edge.dicom import read_slices
    from tfkt_edge.dicom.pixels import read_int16_into

    path = tmp_path / "slice.dcm"
    shutil.copyfile(real["explicit_le"], path)
    (ref,) = read_slices(path)
    row = np.empty((ref.rows, ref.columns), dtype=np.int16)
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(ValueError, match="changed"):
        read_int16_into(ref, row)
    (cut,) = read_slices(path)
    with pytest.raises(ValueError, match="ends after"):
        read_int16_into(cut, row)


def test_batches_scored_in_their_ring_rows_score_as_one_slice_at_a_time(realct, twin, tmp_path):
    """A real 20-slice series (JPEG 2000, decoded into the rows) and 6 uncompressed real slices, two of them cut
    short: in batches of 3 the ring of rows wraps several times, and every slice scores as it does alone; the cut
    ones are skipped, holding their rows."""
    import shutil

    folder = tmp_path / "in"
    shutil.copytree(realct / "totalsegmentator", folder / "series", ignore=shutil.ignore_patterns("LICENSE*"))
    singles = sorted((realct / "saltyjoke").rglob("*.dcm"))[:6]
    for k, source in enumerate(singles):
        data = source.read_bytes()
        (folder / f"single{k}.dcm").write_bytes(data[: len(data) - 50_000] if k in (1, 4) else data)
    one = score_paths([folder], twin, AlertPolicy(), batch_size=1, workers=1)
    ring = score_paths([folder], twin, AlertPolicy(), batch_size=3, workers=2)

    def by_path(run):
        return {s.ref.path: (s.score, s.stats) for r in run.results for s in r.slices}

    in_ring, alone = by_path(ring), by_path(one)
    assert len(in_ring) == 24 and in_ring.keys() == alone.keys()
    for path, (score, stats) in in_ring.items():
        assert score == pytest.approx(alone[path][0], abs=1e-5), path
        assert stats == alone[path][1], path
    cut = {s.path.name for s in ring.skipped}
    assert cut == {"single1.dcm", "single4.dcm"}


def test_texture_figures_left_for_after_the_inference_are_those_of_the_slice(realct, twin, tmp_path):
    """Uncompressed slices' texture figures are taken after the run's inference, from the file read again: the
    figures of the slice itself, for slices read straight into their rows and for a 616x616 reformat on the
    numpy path (resized)."""
    import shutil

    from tfkt_edge.verdict.noise import nps_mean_frequency
    from tfkt_edge.verdict.streaks import streak_index

    for k, source in enumerate(sorted((realct / "saltyjoke").rglob("*.dcm"))[:5]):
        shutil.copyfile(source, tmp_path / f"{k}.dcm")
    shutil.copyfile(realct / "saltyjoke" / "A067967" / "coronal" / "19001006-064.dcm", tmp_path / "reformat.dcm")
    run = score_paths([tmp_path], twin, AlertPolicy())
    slices = [s for r in run.results for s in r.slices]
    taken = [s for s in slices if s.stats.streak_index is not None]
    assert taken and all(s.ref.pixel_offset is not None for s in taken)
    assert any(s.ref.rows == 616 for s in taken)
    for s in taken:
        image = preprocess(load_hu(s.ref), LDCTIQAC)
        assert s.stats.streak_index == pytest.approx(streak_index(image), rel=1e-4)
        assert s.stats.nps_mean_frequency == pytest.approx(nps_mean_frequency(image), rel=1e-4)
