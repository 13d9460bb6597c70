"""The scoring pipeline: decode threads feeding batches, order kept, bad slices skipped."""

from __future__ import annotations

import numpy as np
import pytest

from tfkt_edge.backends import create_backend
from tfkt_edge.dicom import reasons, scan
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.pipeline.run import score_paths, score_series

from .conftest import write_series


@pytest.fixture(scope="module")
def backend():
    return create_backend("onnxruntime", DEFAULT_MODEL)


class _Wrapping:
    """A test backend that passes batches to a real one."""

    def __init__(self, backend):
        self.backend, self.name, self.model = backend, backend.name, backend.model

    def max_batch(self):
        return None

    def infer(self, batch):
        return self.backend.infer(batch)

    def close(self):
        pass


class _Failing(_Wrapping):
    """Raises on its ``on_call``-th inference, as a GPU that is lost mid-run."""

    def __init__(self, backend, on_call: int):
        super().__init__(backend)
        self.on_call, self.calls = on_call, 0

    def infer(self, batch):
        self.calls += 1
        if self.calls == self.on_call:
            raise RuntimeError("device lost")
        return super().infer(batch)


class _Deferred(_Wrapping):
    """Returns from submit at once and reads the batch only when its scores are asked for (as a GPU's copy
    engine may); counts the batches in flight and the batches that changed in between."""

    def __init__(self, backend):
        super().__init__(backend)
        self.most_in_flight, self.in_flight, self.changed = 0, 0, 0

    def submit(self, batch):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        handed = batch.copy()

        def wait():
            self.in_flight -= 1
            self.changed += not np.array_equal(handed, batch)
            return self.infer(batch)  # reads the buffer now, not when submitted

        return wait


@pytest.mark.parametrize("batch_size,workers", [(1, 1), (3, 2), (16, 4)])
def test_scores_do_not_depend_on_batching_or_threads(real, tmp_path, backend, batch_size, workers):
    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(7)], list(range(1, 8)))
    (series,) = scan([tmp_path]).series
    result, skipped = score_series(series, backend, batch_size=batch_size, workers=workers)
    assert not skipped
    assert [s.ref.instance_number for s in result.slices] == list(range(1, 8))
    reference, _ = score_series(series, backend, batch_size=7, workers=1)
    np.testing.assert_allclose(result.scores, reference.scores, atol=1e-5)


def test_a_corrupt_slice_is_skipped_and_the_rest_scored_in_order(real, tmp_path, backend):
    paths = write_series(real["explicit_le"], tmp_path, [float(i) for i in range(5)], [1, 2, 3, 4, 5])
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 100_000])  # header intact, pixel data cut short
    run = score_paths([tmp_path], backend, batch_size=2)
    (result,) = run.results
    assert [s.ref.instance_number for s in result.slices] == [1, 2, 4, 5]
    (skip,) = run.skipped
    assert skip.path == paths[2] and skip.reason.startswith(reasons.PIXELS_UNREADABLE.split("(")[0])


def test_decoding_processes_score_like_threads_and_skip_like_them(real, tmp_path, backend):
    """Spawned decoding processes (--decoders processes): same scores, same order, same skip reason."""
    paths = write_series(real["explicit_le"], tmp_path, [float(i) for i in range(6)], list(range(1, 7)))
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) - 100_000])
    threads = score_paths([tmp_path], backend, batch_size=4, workers=2, decoders="threads")
    processes = score_paths([tmp_path], backend, batch_size=4, workers=2, decoders="processes")
    assert [s.ref.instance_number for s in processes.results[0].slices] == [1, 2, 3, 5, 6]
    np.testing.assert_allclose(processes.results[0].scores, threads.results[0].scores, atol=1e-6)
    assert [s.reason for s in processes.skipped] == [s.reason for s in threads.skipped]


def test_series_are_judged_in_anatomical_order_whatever_order_the_files_are_read(realct, tmp_path, backend):
    """Decoding starts as headers are read (file order); each verdict still sees its slices in anatomical order,
    with the scores a series-at-a-time run gives."""
    sources = sorted((realct / "saltyjoke").rglob("*.dcm"))[:2]
    for k, source in enumerate(sources):  # two series, their files named (and read) against anatomical order
        write_series(source, tmp_path / f"s{k}", [3.0, 0.0, 2.0, 1.0], [1, 2, 3, 4])
    run = score_paths([tmp_path], backend, batch_size=3)
    assert not run.skipped and len(run.results) == 2
    for result in run.results:
        positions = [s.ref.position for s in result.slices]
        assert positions == sorted(positions) or positions == sorted(positions, reverse=True)
        assert [s.ref.path for s in result.slices] != sorted(s.ref.path for s in result.slices)  # not the read order
        alone, _ = score_series(scan([result.slices[0].ref.path.parent]).series[0], backend, batch_size=4)
        np.testing.assert_allclose(result.scores, alone.scores, atol=1e-6)


def test_a_truncated_copy_read_first_gives_way_to_the_whole_one(real, tmp_path, backend):
    (path,) = write_series(real["explicit_le"], tmp_path / "b", [0.0], [1])
    truncated = tmp_path / "a" / "copy.dcm"
    truncated.parent.mkdir()
    truncated.write_bytes(path.read_bytes()[:-100_000])  # read before the whole copy; its pixels fail
    run = score_paths([tmp_path / "a", tmp_path / "b"], backend)
    (result,) = run.results
    assert [s.ref.path for s in result.slices] == [path]
    (skip,) = run.skipped
    assert skip.path == truncated and "duplicate" in skip.reason.lower()


def test_an_error_while_reading_headers_reaches_the_caller_and_leaves_no_thread(real, tmp_path, backend):
    import threading

    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(40)], list(range(1, 41)))

    def on_file(path):
        if path.name == "file30.dcm":
            raise RuntimeError("reading stopped")

    with pytest.raises(RuntimeError, match="reading stopped"):
        score_paths([tmp_path], backend, batch_size=4, on_file=on_file)
    assert not [t for t in threading.enumerate() if t.name == "headers"]


def test_a_consumer_that_stops_early_releases_the_header_thread(real, tmp_path):
    """The reader blocks on its full queue; leaving the context must still end it (an inference error, Ctrl-C)."""
    from tfkt_edge.dicom import Scanner
    from tfkt_edge.pipeline.headers import HeaderReader

    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(12)], list(range(1, 13)))
    reader = HeaderReader([tmp_path], Scanner(), queued=2)
    with reader as refs:
        next(refs)
    assert not reader._thread.is_alive()


def _shared_blocks() -> set[str]:
    from pathlib import Path

    return {p.name for p in Path("/dev/shm").glob("psm_*")} if Path("/dev/shm").is_dir() else set()


def test_decoding_processes_hand_slices_over_in_shared_memory_and_leave_none_behind(real, tmp_path):
    """The CLI with --decoders processes: the same scores as threads, nothing on stderr, no block left."""
    import json
    import subprocess
    import sys

    write_series(real["explicit_le"], tmp_path / "s", [float(i) for i in range(9)], list(range(1, 10)))
    before = _shared_blocks()
    runs = {}
    for decoders in ("threads", "processes"):
        done = subprocess.run([sys.executable, "-m", "tfkt_edge", "score", str(tmp_path / "s"), "--format", "json",
                               "--decoders", decoders, "--workers", "2", "--batch-size", "4"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "leaked" not in done.stderr, done.stderr
        runs[decoders] = [s["score"] for s in json.loads(done.stdout)["series"][0]["slices"]]
    np.testing.assert_allclose(runs["processes"], runs["threads"], atol=1e-4)
    assert _shared_blocks() <= before


def test_an_inference_error_with_decoding_processes_removes_the_shared_block(real, tmp_path, backend):
    from tfkt_edge.pipeline.decode import decoder_pool
    from tfkt_edge.pipeline.feed import score_slices

    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(12)], list(range(1, 13)))
    refs = scan([tmp_path]).series[0].slices
    before = _shared_blocks()
    with decoder_pool(2, "processes") as pool, pytest.raises(RuntimeError, match="device lost"):
        score_slices(refs, _Failing(backend, on_call=2), batch_size=3, workers=2, pool=pool)
    assert _shared_blocks() <= before


def _run(paths, backend, decoders):
    """score_paths with every callback counted."""
    files, slices, totals = [], [], []
    run = score_paths(paths, backend, batch_size=4, workers=2, decoders=decoders, on_file=files.append,
                      on_scan_done=totals.append, on_slice=lambda: slices.append(1))
    return run, files, len(slices), totals


def test_reading_processes_handle_a_mixed_folder_as_threads_do(real, tmp_path, backend):
    """--decoders processes reads headers in the processes too: a mixed folder (a corrupt slice, a truncated
    duplicate, an Enhanced CT, an MR image, a text file) gives the same series, scores, skips and progress."""
    import shutil

    paths = write_series(real["explicit_le"], tmp_path / "a", [float(i) for i in range(21)], list(range(1, 22)))
    data = paths[5].read_bytes()
    paths[5].write_bytes(data[: len(data) - 100_000])  # header intact, pixels cut short
    (tmp_path / "a" / "zz_copy.dcm").write_bytes(paths[9].read_bytes()[:-200_000])  # a smaller copy of one instance
    shutil.copyfile(real["enhanced_ct"], tmp_path / "b_enhanced.dcm")
    shutil.copyfile(real["mr"], tmp_path / "c_mr.dcm")
    (tmp_path / "d_notes.txt").write_text("not DICOM")
    threads, t_files, t_slices, t_totals = _run([tmp_path], backend, "threads")
    processes, p_files, p_slices, p_totals = _run([tmp_path], backend, "processes")
    assert len(threads.results) == 2 and len(processes.results) == 2
    for ours, theirs in zip(processes.results, threads.results):
        assert [s.ref.path for s in ours.slices] == [s.ref.path for s in theirs.slices]
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)
        assert ours.verdict == theirs.verdict
    skips = sorted((s.path.name, s.reason) for s in processes.skipped)
    assert skips == sorted((s.path.name, s.reason) for s in threads.skipped)
    assert {name for name, _ in skips} == {"file05.dcm", "zz_copy.dcm", "c_mr.dcm", "d_notes.txt"}
    assert p_files == t_files and p_totals == t_totals and p_slices == t_slices


def test_an_inference_error_while_processes_read_removes_the_shared_block(real, tmp_path, backend):
    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(40)], list(range(1, 41)))
    before = _shared_blocks()
    with pytest.raises(RuntimeError, match="device lost"):
        score_paths([tmp_path], _Failing(backend, on_call=1), batch_size=4, workers=2, decoders="processes")
    assert _shared_blocks() <= before


def test_reading_jobs_grow_from_one_file_and_keep_skips_in_order():
    from pathlib import Path

    from tfkt_edge.dicom import Skip
    from tfkt_edge.pipeline.processes import _chunks

    items = [Path(f"{i}") for i in range(12)]
    items.insert(4, Skip(Path("gone"), "no such file or folder"))
    groups = list(_chunks(iter(items), 4))
    assert [g if isinstance(g, Skip) else [p.name for p in g] for g in groups] == [
        ["0"], ["1", "2"], ["3"], Skip(Path("gone"), "no such file or folder"), ["4", "5", "6", "7"],
        ["8", "9", "10", "11"]]


def test_a_batch_in_flight_is_not_refilled_before_its_scores_are_in(real, tmp_path, backend):
    """A backend that returns from submit at once and reads the batch only when its scores are asked for
    (as a GPU's copy engine may): the pipeline must leave each buffer alone until then."""

    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(11)], list(range(1, 12)))
    (series,) = scan([tmp_path]).series
    reference, _ = score_series(series, backend, batch_size=11, workers=1)
    deferred = _Deferred(backend)
    for decoders in ("threads", "processes"):
        run = score_paths([tmp_path], deferred, batch_size=3, workers=2, decoders=decoders)
        np.testing.assert_allclose(run.results[0].scores, reference.scores, atol=1e-5)
    assert deferred.most_in_flight == 2 and deferred.in_flight == 0


def test_reading_processes_reuse_their_ring_only_after_its_batches_are_scored(real, tmp_path, backend):
    """With decoding processes each batch is scored where the workers decoded it. 100 different slices through
    a ring of 72 slots, a run of non-CT files (a batch with no slice to score) among them, and a backend that
    reads its batch only when asked for the scores: no batch may change between being handed over and scored."""
    import pydicom
    from pydicom.uid import generate_uid

    from tfkt_edge.pipeline.processes import CHUNK

    ds = pydicom.dcmread(real["explicit_le"])
    pixels, uid = ds.pixel_array, generate_uid()
    for i in range(100):  # each slice different: the image shifted by i columns
        ds.PixelData = np.roll(pixels, 3 * i, axis=1).astype(pixels.dtype).tobytes()
        ds.SeriesInstanceUID, ds.InstanceNumber, ds.ImagePositionPatient = uid, i + 1, [0.0, 0.0, float(i)]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(tmp_path / f"file{i:02d}.dcm")
    for k in range(5):
        (tmp_path / f"file49_{k}.txt").write_text("not DICOM")  # listed between file49 and file50
    assert (-(-4 * CHUNK // 2) + 4) * 2 == 72 < 100  # the ring for 2 workers and batches of 2
    (series,) = scan([tmp_path]).series
    reference, _ = score_series(series, backend, batch_size=16, workers=1)
    deferred = _Deferred(backend)
    run = score_paths([tmp_path], deferred, batch_size=2, workers=2, decoders="processes")
    assert deferred.changed == 0
    assert [s.ref.instance_number for s in run.results[0].slices] == list(range(1, 101))
    np.testing.assert_allclose(run.results[0].scores, reference.scores, atol=1e-5)
    assert len(run.skipped) == 5


def test_a_decoding_process_killed_mid_run_ends_in_one_error_and_leaves_no_block(tmp_path, backend):
    """A decoding process killed while reading (the out-of-memory killer, a crash in a native decoder):
    score_paths raises DecodingError (one line at the CLI), and the shared block is removed."""
    import multiprocessing
    import os
    import signal
    import threading

    from tfkt_edge.bench.benchmark import write_series as write_copies
    from tfkt_edge.errors import DecodingError

    write_copies(tmp_path, 400)
    before = _shared_blocks()
    started = threading.Event()
    outcome: list[BaseException | None] = []

    def run():
        try:
            score_paths([tmp_path], backend, batch_size=16, workers=2, decoders="processes", on_file=lambda _: started.set())
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    others = set(multiprocessing.active_children())  # processes of other tests' pools, still ending
    scoring = threading.Thread(target=run)
    scoring.start()
    assert started.wait(60)  # the first file is back from a decoding process: the pool is running
    victims = [p for p in set(multiprocessing.active_children()) - others if p.is_alive()]
    assert victims
    os.kill(victims[0].pid, signal.SIGKILL)
    scoring.join(120)
    assert not scoring.is_alive()
    assert isinstance(outcome[0], DecodingError), outcome
    assert "decoding process ended" in str(outcome[0])
    assert _shared_blocks() <= before


def test_a_ring_larger_than_the_free_shared_memory_is_refused_before_anything_is_written():
    """Pages of shared memory are taken only when written: a block larger than /dev/shm's free space would
    kill a decoding process with SIGBUS mid-run. It is refused at once, with what to do (a DecodingError:
    one line at the CLI)."""
    import shutil
    from pathlib import Path

    from tfkt_edge.errors import DecodingError
    from tfkt_edge.pipeline.slots import SharedSlots

    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm here")
    # Twice the free space: blocks that other processes release meanwhile (a pool shutting down) cannot make it fit.
    slots = 2 * shutil.disk_usage(shm).free // (512 * 512 * 4) + 1
    before = _shared_blocks()
    with pytest.raises(DecodingError, match=r"MiB of shared memory and /dev/shm has \d+ MiB free: .*--shm-size"):
        SharedSlots(slots, 512)
    assert _shared_blocks() <= before


def _blas_threads() -> set[int]:
    """How many threads each BLAS library loaded in this process may use now."""
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


class _BlasWatch(_Wrapping):
    """Notes how many threads BLAS may use while each batch is scored."""

    def __init__(self, backend):
        super().__init__(backend)
        self.seen: set[int] = set()

    def infer(self, batch):
        self.seen |= _blas_threads()
        return super().infer(batch)


def test_blas_runs_on_one_thread_while_a_run_scores_and_as_before_after(backend, real):
    """A slice of another size goes through the resize rule's matrix products in a decoding thread; BLAS's own
    threads would stall the model's beside it. During the run BLAS has one thread; after it, what it had."""
    from threadpoolctl import threadpool_limits

    if not _blas_threads():
        pytest.skip("numpy is built without a BLAS that threadpoolctl sees")
    watch = _BlasWatch(backend)
    with threadpool_limits(limits=2, user_api="blas"):
        run = score_paths([real["ct_small"]], watch)  # 128x128: resized to the model's 512
        assert watch.seen == {1} and run.results[0].slices
        assert _blas_threads() == {2}


class _FailingStored(_Wrapping):
    """A stored-input model (the CPU default) whose ``on_call``-th batch fails, as a lost device would."""

    takes_stored = True

    def __init__(self, backend, on_call: int):
        super().__init__(backend)
        self.on_call, self.calls = on_call, 0

    def infer_stored(self, stored, rescale):
        self.calls += 1
        if self.calls == self.on_call:
            raise RuntimeError("device lost")
        return self.backend.infer_stored(stored, rescale)


def test_an_inference_error_in_the_ring_of_rows_ends_the_run_with_that_error(real, tmp_path):
    """The stored-input path's batches are scored in their ring rows while threads write the next ones: an
    error in the second batch ends the run with it (no hang), and the model scores the next run as before."""
    from tfkt_edge.model.model_file import STORED_MODEL

    twin = create_backend("onnxruntime", STORED_MODEL)
    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(12)], list(range(1, 13)))
    with pytest.raises(RuntimeError, match="device lost"):
        score_paths([tmp_path], _FailingStored(twin, on_call=2), batch_size=3, workers=2)
    run = score_paths([tmp_path], twin, batch_size=3, workers=2)
    assert len(run.results[0].slices) == 12


def test_a_run_scores_in_the_backends_own_batch_unless_told_another(real, tmp_path):
    """The CPU backend's batches are of 8 slices when the caller names no size (its fastest per slice on the
    2-core CPU); a size given is the size used."""
    from tfkt_edge.backends.base import DEFAULT_BATCH, default_batch
    from tfkt_edge.model.model_file import STORED_MODEL

    twin = create_backend("onnxruntime", STORED_MODEL)
    assert default_batch(twin) == 8 and default_batch(_Wrapping(twin)) == DEFAULT_BATCH == 16
    write_series(real["explicit_le"], tmp_path, [float(i) for i in range(20)], list(range(1, 21)))
    sizes: list[int] = []
    infer_stored = twin.infer_stored

    def recorded(stored, rescale):
        sizes.append(len(stored))
        return infer_stored(stored, rescale)

    twin.infer_stored = recorded
    by_default = score_paths([tmp_path], twin)
    assert sizes == [8, 8, 4]
    sizes.clear()
    given = score_paths([tmp_path], twin, batch_size=16)
    assert sizes == [16, 4]
    assert [s.score for s in by_default.results[0].slices] == pytest.approx([s.score for s in given.results[0].slices], abs=1e-5)
