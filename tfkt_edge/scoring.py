"""From ordered series to per-slice scores: decoding overlaps inference.

Decoding workers read and preprocess slices while the calling thread runs
the backend on full batches. Workers are threads by default; processes are
the choice for compressed series on hosts with cores to spare (a GPU host):
the JPEG 2000 decoder holds the GIL, so decoding threads run one at a time
(the bundled JPEG 2000 example decodes at 37 slices/s with one thread and
with two). On the 2-core development machine, where ONNX Runtime already uses
both cores, two processes were slower than threads (26 against 35 slices/s).
Processes write each decoded slice into a ring of shared-memory slots (handover.py)
instead of pickling it back, and `score_paths` gives them the header reading too
(process_reading.py), so the calling process does not cap a many-core host.
One pool serves every series of a run. At most ``prefetch`` slices are in
flight, so memory stays bounded however long the series is.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tfkt_edge.backends import Backend
from tfkt_edge.backends.base import staging, submit
from tfkt_edge.dicom import Scanner, Series, Skip, SliceRef, load_stored, read_headers, reasons
from tfkt_edge.dicom.gpu_decoding import enable_gpu_decoding
from tfkt_edge.domain import POOL, Domain, DomainStatus, ImageStats, check_series, image_stats, kernel_class
from tfkt_edge.errors import DecodingError
from tfkt_edge.handover import SharedSlots, decode_into_slot
from tfkt_edge.model_file import ModelInfo
from tfkt_edge.noise import PHYSICS_DEFAULTS, NoiseFinding, NoiseLimits, assess_noise, region_of
from tfkt_edge.physics import SeriesPhysics, series_physics
from tfkt_edge.policy import AlertPolicy, Verdict, evaluate, outside_domain
from tfkt_edge.preprocess import PreprocessContract, preprocess, reading_view
from tfkt_edge.score_bound import bounded


@dataclass(frozen=True)
class SliceScore:
    """One slice's learned score, its image statistics and the noise bound on its score (`score_bound`)."""

    ref: SliceRef
    learned: float
    stats: ImageStats | None = None
    bound: float | None = None  # the best score its measured noise allows; None: not measured

    @property
    def score(self) -> float:
        """The score the verdict uses: the learned score, capped by the noise bound."""
        return bounded(self.learned, self.bound)

    @property
    def label(self) -> str:
        name = f"instance {self.ref.instance_number}" if self.ref.instance_number is not None else self.ref.path.name
        return name if self.ref.frame is None else f"{name} frame {self.ref.frame + 1}"


@dataclass(frozen=True)
class SeriesResult:
    series: Series
    slices: tuple[SliceScore, ...]
    verdict: Verdict
    domain: DomainStatus = field(default_factory=lambda: DomainStatus(True))
    noise: NoiseFinding | None = None  # the noise check (None: no slice had soft tissue to measure)
    physics: SeriesPhysics | None = None  # water-equivalent diameter, CTDIvol, SSDE

    @property
    def scores(self) -> np.ndarray:
        return np.array([s.score for s in self.slices], dtype=float)


def slice_score(ref: SliceRef, learned: float, stats: ImageStats | None, model: ModelInfo) -> SliceScore:
    """A slice's learned score with the noise bound of ``model`` (`tfkt_edge.score_bound`) on it."""
    noise = stats.noise_hu if stats is not None else None
    return SliceScore(ref, learned, stats, model.score_bound.of_noise(noise, kernel_class(ref.kernel or ""), model.contract))


def decode_slice(ref: SliceRef, contract: PreprocessContract) -> np.ndarray | Skip:
    """Decode and preprocess one slice, or say why it cannot be."""
    try:
        return preprocess(load_stored(ref), contract, ref.slope, ref.intercept)
    except Exception as exc:  # truncated or corrupt pixel data: a reason, never a traceback
        return Skip(ref.path, reasons.PIXELS_UNREADABLE.format(detail=reasons.one_line(exc)))


def decode_with_stats(ref: SliceRef, contract: PreprocessContract, pool: int = POOL) -> tuple[np.ndarray, ImageStats] | Skip:
    """`decode_slice` plus the domain check's image statistics (pooled ``pool``x: `ModelInfo.stats_pool`),
    both in the decoding worker; the image handed on is the reader's view of it (`preprocess.reading_view`)."""
    image = decode_slice(ref, contract)
    if isinstance(image, Skip):
        return image
    stats = image_stats(image, contract, pool)  # physics on the slice as stored, before the reader's view
    head = region_of(ref.body_part) == "head"
    return reading_view(image, kernel_class(ref.kernel or ""), head, contract), stats


DECODERS = ("threads", "processes")


def decoder_pool(workers: int, decoders: str = "threads") -> Executor:
    """``workers`` decoding threads, or processes (spawned, not forked: the parent may hold CUDA
    or ONNX Runtime threads; each decodes lossless JPEG 2000 and JPEG on the GPU where nvImageCodec
    works: dicom/gpu_decoding.py). A single worker is always a thread."""
    if decoders not in DECODERS:
        raise ValueError(f"decoders must be one of {DECODERS}, not {decoders!r}")
    if decoders == "threads" or workers <= 1:
        return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=enable_gpu_decoding)


Scored = list[tuple[SliceRef, ImageStats]]  # the slices of one batch, in its rows' order


def stop_broken(pool: Executor) -> None:
    """Stop a process pool that a dead process broke, so nothing waits on it forever.

    A worker spawned while the pool was breaking can block for good on the task queue's lock that the
    dead process held, and CPython's executor then waits for it at shutdown and at interpreter exit.
    The executor offers no public handle on its processes, hence the private ``_processes``."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() lets go of them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()


class Batcher:
    """Collects decoded slices into batches and scores each full batch; NaN scores become skips.

    Two batch buffers alternate: while the backend scores one (on a GPU, without holding the calling
    thread: `backends.base.submit`), the other fills. A buffer is refilled only after its scores are in.
    A caller that lays its batches out itself (process_reading.py) hands them over with ``submit_view``.
    """

    def __init__(self, backend: Backend, batch_size: int, own_buffers: bool = True):
        limit = backend.max_batch()
        self.size = max(1, min(batch_size, limit) if limit else batch_size)
        self.backend = backend
        self._buffers = [staging(backend, self.size) for _ in range(2)] if own_buffers else []
        self._filling = 0
        self._in_flight: deque[tuple[Callable[[], np.ndarray], Scored, Callable[[], None] | None]] = deque()
        self.pending: Scored = []
        self.scored: list[SliceScore] = []
        self.skipped: list[Skip] = []

    def add(self, ref: SliceRef, image: np.ndarray, stats: ImageStats) -> None:
        self._buffers[self._filling][len(self.pending), 0] = image
        self.pending.append((ref, stats))
        if len(self.pending) == self.size:
            batch = self._buffers[self._filling][: len(self.pending)]
            self._filling = 1 - self._filling
            self.submit_view(batch, self.pending)
            self.pending = []

    def submit_view(self, batch: np.ndarray | None, slices: Scored, on_scored: Callable[[], None] | None = None) -> None:
        """Score ``batch`` (rows in the order of ``slices``), which the caller leaves unchanged until
        ``on_scored`` is called. At most two batches are in flight: the older one's scores are taken first.
        A batch of None has nothing to score; its ``on_scored`` is called in its turn all the same."""
        waiting = submit(self.backend, batch) if batch is not None else (lambda: np.empty(0, dtype=np.float32))
        self._in_flight.append((waiting, slices, on_scored))
        if len(self._in_flight) == 2:
            self._collect()

    def _collect(self) -> None:
        scores, slices, on_scored = self._in_flight.popleft()
        for (ref, stats), value in zip(slices, scores()):
            if np.isfinite(value):
                self.scored.append(slice_score(ref, float(value), stats, self.backend.model))
            else:  # never let a NaN into a median, where it would read as "not below the threshold"
                self.skipped.append(Skip(ref.path, reasons.NON_FINITE))
        if on_scored is not None:
            on_scored()

    def flush(self) -> None:
        """Score what is pending and wait for every batch in flight."""
        if self.pending:
            self.submit_view(self._buffers[self._filling][: len(self.pending)], self.pending)
            self.pending = []
        while self._in_flight:
            self._collect()

    def abandon(self) -> None:
        """After an error: wait for the batches in flight (so no copy still reads their memory), dropping
        their scores and any error they raise."""
        while self._in_flight:
            scores, _, _ = self._in_flight.popleft()
            try:
                scores()
            except Exception:
                pass


def score_slices(
    refs: Iterable[SliceRef],
    backend: Backend,
    batch_size: int = 16,
    workers: int = 2,
    on_slice: Callable[[], None] | None = None,
    pool: Executor | None = None,
) -> tuple[list[SliceScore], list[Skip]]:
    """Score slices in order; slices whose pixels fail to decode become skips.

    Args:
        pool: decoding workers to use (default: a pool of ``workers`` made for this call).
    """
    batcher = Batcher(backend, batch_size)
    prefetch = max(2 * batcher.size, 2 * workers)
    contract, stats_pool = backend.model.contract, backend.model.stats_pool
    in_flight: deque[tuple[SliceRef, Future, int]] = deque()
    source = iter(refs)
    with nullcontext(pool) if pool is not None else decoder_pool(workers) as decoders:
        # Decoding processes write into shared memory instead of pickling each slice back (1 MiB).
        shared = SharedSlots(prefetch, contract.size) if isinstance(decoders, ProcessPoolExecutor) else None
        free = list(range(prefetch))
        try:
            while True:
                while len(in_flight) < prefetch:
                    ref = next(source, None)
                    if ref is None:
                        break
                    slot = free.pop()
                    job = decoders.submit(decode_into_slot, ref, contract, stats_pool, shared.name, slot, prefetch) if shared \
                        else decoders.submit(decode_with_stats, ref, contract, stats_pool)
                    in_flight.append((ref, job, slot))
                if not in_flight:
                    break
                ref, future, slot = in_flight.popleft()
                decoded = future.result()
                if isinstance(decoded, Skip):
                    batcher.skipped.append(decoded)
                elif shared is not None:
                    batcher.add(ref, shared.array[slot], decoded)
                else:
                    batcher.add(ref, *decoded)
                free.append(slot)
                if on_slice is not None:
                    on_slice()
            batcher.flush()
        finally:
            if shared is not None:
                shared.close_after([future for _, future, _ in in_flight])
    return batcher.scored, batcher.skipped


def score_series(
    series: Series,
    backend: Backend,
    policy: AlertPolicy = AlertPolicy(),
    batch_size: int = 16,
    workers: int = 2,
    on_slice: Callable[[], None] | None = None,
    pool: Executor | None = None,
) -> tuple[SeriesResult, list[Skip]]:
    scored, skipped = score_slices(series.slices, backend, batch_size, workers, on_slice, pool)
    return judge(series, scored, policy, backend.model.domain, backend.model.noise_limits,
                 lost_slices(series, scored), backend.model.contract.size), skipped


def lost_slices(series: Series, scored: Sequence[SliceScore], skipped: Iterable[Skip] = ()) -> list[str]:
    """Why slices of ``series`` could not be judged: its slices that were not scored (pixels unreadable,
    non-finite) and skipped files of the series (a refused header, no pixel data)."""
    done = {(s.ref.path, s.ref.frame) for s in scored}
    lost = [f"{ref.path.name}: could not be scored" for ref in series.slices if (ref.path, ref.frame) not in done]
    uid = series.slices[0].series_instance_uid if series.slices else ""
    lost += [f"{skip.path.name}: {skip.reason}" for skip in skipped
             if uid and skip.series_uid == uid and reasons.loses_slice(skip.reason)]
    return lost


def judge(series: Series, scored: Iterable[SliceScore], policy: AlertPolicy, domain: Domain | None = None,
          noise_limits: NoiseLimits = PHYSICS_DEFAULTS, lost: Sequence[str] = (), size: int = 512) -> SeriesResult:
    """The verdict on one series: the learned score where the model is validated, physics everywhere.

    * The domain check says only whether the learned score is validated for this series.
    * Physics judges every series, inside the domain or not: noise above the ceiling for its header's kernel
      class and its patient's size (`tfkt_edge.noise`), or a share of slices above it, is an alert.
    * Inside the domain, the alert policy judges the slice scores (given in anatomical order).
    * A series with slices that could not be judged (``lost``) never passes: it says so and alerts.
    """
    slices = tuple(scored)
    refs = [s.ref for s in slices]
    stats = [s.stats for s in slices]
    status = check_series(refs, stats, domain)
    region = region_of(refs[0].body_part) if refs else "body"
    physics = series_physics(refs, [x.water_diameter_px if x else None for x in stats], size, region,
                             [x.streak_index if x else None for x in stats],
                             [x.nps_mean_frequency if x else None for x in stats])
    baseline = policy.baselines.lookup(series) if policy.baselines is not None and slices else None
    noise = assess_noise(refs, [x.noise_hu if x else None for x in stats], [x.noise_texture if x else None for x in stats],
                         kernel_class(refs[0].kernel or "") if refs else "unknown", noise_limits, physics.water_diameter_cm)
    if noise is not None and baseline is not None and baseline.noise_hu is not None and baseline.noise_ceiling_hu:
        noise = noise.for_protocol(baseline.noise_hu, baseline.noise_ceiling_hu)
    physics_alerts = []
    if policy.noise_check and noise is not None:
        if noise.above:
            physics_alerts.append(noise.reason)
        elif noise.slices_above >= 2 and noise.share_above >= policy.max_share:
            physics_alerts.append(noise.share_reason)
    if lost:
        n = len(lost) + len(slices)
        physics_alerts.append(f"{len(lost)} of {n} slices could not be judged ({lost[0]}"
                              f"{'; ...' if len(lost) > 1 else ''}): the series is incomplete")
    if slices and not status.inside:
        verdict = outside_domain(status.reasons, float(np.median([s.score for s in slices])))
        if physics_alerts:
            verdict = Verdict(True, f"{'; '.join(physics_alerts)} [{verdict.reason}]")
        return SeriesResult(series, slices, verdict, status, noise, physics)
    own = policy if baseline is None else replace(policy, threshold=baseline.low)
    verdict = evaluate([s.score for s in slices], [s.label for s in slices], own)
    if baseline is not None:
        verdict = replace(verdict, reason=f"{verdict.reason} [protocol baseline: accepted series score "
                                          f"{baseline.median:.2f} (n={baseline.n_series}); alert line "
                                          f"{baseline.low:.2f} instead of {policy.threshold:.2f}]")
    if physics_alerts:
        extra = "; ".join(physics_alerts)
        verdict = Verdict(True, f"{verdict.reason}; {extra}" if verdict.alert else f"{extra}; {verdict.reason}")
    return SeriesResult(series, slices, verdict, status, noise, physics)


@dataclass(frozen=True)
class ScoringRun:
    model: ModelInfo
    results: list[SeriesResult]
    skipped: list[Skip]


class HeaderReader:
    """Reads headers in a thread of its own and hands over each file's slices as soon as it is read, so
    decoding and inference start at once and header parsing overlaps inference (which releases the GIL).
    Iterate it in the calling thread; an error while reading is raised there."""

    _DONE = object()

    def __init__(self, paths: Iterable[Path], scanner: Scanner, on_file: Callable[[Path], None] | None = None,
                 on_done: Callable[[int], None] | None = None, queued: int = 256):
        self._paths, self._scanner, self._on_file, self._on_done = paths, scanner, on_file, on_done
        self._queue: queue.Queue = queue.Queue(maxsize=queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="headers", daemon=True)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        total = 0
        try:
            for item, found in read_headers(self._paths, self._on_file):
                for ref in self._scanner.add(item, found):
                    total += 1
                    if not self._put(ref):
                        return
            self._put((self._DONE, total))
        except BaseException as exc:  # handed to the calling thread, raised there
            self._put((self._DONE, exc))

    def __enter__(self) -> Iterator[SliceRef]:
        self._thread.start()
        return self._refs()

    def _refs(self) -> Iterator[SliceRef]:
        while True:
            item = self._queue.get()
            if isinstance(item, tuple) and item and item[0] is self._DONE:
                if isinstance(item[1], BaseException):
                    raise item[1]
                if self._on_done is not None:
                    self._on_done(item[1])
                return
            yield item

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def score_paths(
    paths: Iterable[Path],
    backend: Backend,
    policy: AlertPolicy = AlertPolicy(),
    batch_size: int = 16,
    workers: int = 2,
    on_file: Callable[[Path], None] | None = None,
    on_scan_done: Callable[[int], None] | None = None,
    on_slice: Callable[[], None] | None = None,
    decoders: str = "threads",
) -> ScoringRun:
    """Find, read, score and judge everything under ``paths``.

    Args:
        decoders: "threads" or "processes" for the ``workers`` decoding workers.
        on_file: called after each file's header is read.
        on_scan_done: called once all headers are read, with the number of slices to score (scoring
            starts before: slices are decoded as their files are read).
        on_slice: called after each slice is scored or skipped.
    """
    if policy.baselines is not None:
        policy.baselines.require_model(backend.model.identity)
    scanner = Scanner()
    with decoder_pool(workers, decoders) as pool:
        if isinstance(pool, ProcessPoolExecutor):  # headers are read in the processes too (process_reading.py)
            from tfkt_edge.process_reading import score_files

            try:
                scored, failed = score_files(paths, backend, pool, scanner, batch_size, workers, on_file,
                                             on_scan_done, on_slice)
            except BrokenProcessPool:
                stop_broken(pool)
                raise DecodingError("a decoding process ended before finishing its files (killed, out of memory, "
                                    "or a crash in a native decoder); nothing was reported: run again, with fewer "
                                    "--workers or with --decoders threads") from None
        else:
            with HeaderReader(paths, scanner, on_file, on_scan_done) as refs:
                scored, failed = score_slices(refs, backend, batch_size, workers, on_slice, pool)
    found = scanner.result()
    by_slice = {(s.ref.path, s.ref.frame): s for s in scored}
    results = []
    for series in found.series:  # judged in anatomical order, whatever order the files were read in
        slices = [by_slice[key] for ref in series.slices if (key := (ref.path, ref.frame)) in by_slice]
        lost = lost_slices(series, slices, found.skipped)
        if slices or lost:  # a series none of whose slices could be scored is an alert, not an absence
            results.append(judge(series, slices, policy, backend.model.domain, backend.model.noise_limits, lost,
                                 backend.model.contract.size))
    kept = {ref.path for series in found.series for ref in series.slices}  # not a copy superseded by a larger one
    return ScoringRun(backend.model, results, found.skipped + [skip for skip in failed if skip.path in kept])
