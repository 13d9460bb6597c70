"""From ordered series to per-slice scores: decoding overlaps inference.

Decoding workers read and preprocess slices while the calling thread runs
the backend on full batches. Workers are threads by default; processes are
the choice for compressed series on hosts with cores to spare (a GPU host):
the JPEG 2000 decoder holds the GIL, so decoding threads run one at a time
(the bundled JPEG 2000 example decodes at 37 slices/s with one thread and
with two). On the 2-core development machine, where ONNX Runtime already uses
both cores, two processes were slower than threads (26 against 35 slices/s).
One pool serves every series of a run. At most ``prefetch`` slices are in
flight, so memory stays bounded however long the series is.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tfkt_edge.backends import Backend
from tfkt_edge.dicom import Series, Skip, SliceRef, load_stored, reasons, scan
from tfkt_edge.domain import Domain, DomainStatus, ImageStats, check_series, image_stats
from tfkt_edge.model_file import ModelInfo
from tfkt_edge.policy import AlertPolicy, Verdict, evaluate, outside_domain
from tfkt_edge.preprocess import PreprocessContract, preprocess


@dataclass(frozen=True)
class SliceScore:
    ref: SliceRef
    score: float
    stats: ImageStats | None = None

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

    @property
    def scores(self) -> np.ndarray:
        return np.array([s.score for s in self.slices], dtype=float)


def decode_slice(ref: SliceRef, contract: PreprocessContract) -> np.ndarray | Skip:
    """Decode and preprocess one slice, or say why it cannot be."""
    try:
        return preprocess(load_stored(ref), contract, ref.slope, ref.intercept)
    except Exception as exc:  # truncated or corrupt pixel data: a reason, never a traceback
        return Skip(ref.path, reasons.PIXELS_UNREADABLE.format(detail=reasons.one_line(exc)))


def decode_with_stats(ref: SliceRef, contract: PreprocessContract) -> tuple[np.ndarray, ImageStats] | Skip:
    """`decode_slice` plus the domain check's image statistics, both in the decoding worker."""
    image = decode_slice(ref, contract)
    return image if isinstance(image, Skip) else (image, image_stats(image, contract))


DECODERS = ("threads", "processes")


def decoder_pool(workers: int, decoders: str = "threads") -> Executor:
    """``workers`` decoding threads, or processes (spawned, not forked: the parent may hold CUDA
    or ONNX Runtime threads). A single worker is always a thread."""
    if decoders not in DECODERS:
        raise ValueError(f"decoders must be one of {DECODERS}, not {decoders!r}")
    if decoders == "threads" or workers <= 1:
        return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


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
    limit = backend.max_batch()
    batch_size = max(1, min(batch_size, limit) if limit else batch_size)
    size = backend.model.contract.size
    batch = np.empty((batch_size, 1, size, size), dtype=np.float32)
    pending: list[tuple[SliceRef, ImageStats]] = []
    scored: list[SliceScore] = []
    skipped: list[Skip] = []

    def flush() -> None:
        if pending:
            values = backend.infer(batch[: len(pending)])
            for (ref, stats), value in zip(pending, values):
                if np.isfinite(value):
                    scored.append(SliceScore(ref, float(value), stats))
                else:  # never let a NaN into a median, where it would read as "not below the threshold"
                    skipped.append(Skip(ref.path, reasons.NON_FINITE))
            pending.clear()

    prefetch = max(2 * batch_size, 2 * workers)
    in_flight: deque[tuple[SliceRef, Future]] = deque()
    source = iter(refs)
    with nullcontext(pool) if pool is not None else decoder_pool(workers) as decoders:
        while True:
            while len(in_flight) < prefetch:
                ref = next(source, None)
                if ref is None:
                    break
                in_flight.append((ref, decoders.submit(decode_with_stats, ref, backend.model.contract)))
            if not in_flight:
                break
            ref, future = in_flight.popleft()
            decoded = future.result()
            if isinstance(decoded, Skip):
                skipped.append(decoded)
            else:
                batch[len(pending), 0], stats = decoded
                pending.append((ref, stats))
                if len(pending) == batch_size:
                    flush()
            if on_slice is not None:
                on_slice()
        flush()
    return scored, skipped


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
    return judge(series, scored, policy, backend.model.domain), skipped


def judge(series: Series, scored: Iterable[SliceScore], policy: AlertPolicy, domain: Domain | None = None) -> SeriesResult:
    """Check the series against the model's validated domain, then apply the alert policy to its
    slice scores (given in anatomical order). Outside the domain there is no alert."""
    slices = tuple(scored)
    status = check_series([s.ref for s in slices], [s.stats for s in slices], domain)
    if slices and not status.inside:
        return SeriesResult(series, slices, outside_domain(status.reasons, float(np.median([s.score for s in slices]))),
                            status)
    baseline = policy.baselines.lookup(series) if policy.baselines is not None and slices else None
    own = policy if baseline is None else replace(policy, threshold=baseline.low)
    verdict = evaluate([s.score for s in slices], [s.label for s in slices], own)
    if baseline is not None:
        verdict = replace(verdict, reason=f"{verdict.reason} [protocol baseline: accepted series score "
                                          f"{baseline.median:.2f} (n={baseline.n_series}); alert line "
                                          f"{baseline.low:.2f} instead of {policy.threshold:.2f}]")
    return SeriesResult(series, slices, verdict, status)


@dataclass(frozen=True)
class ScoringRun:
    model: ModelInfo
    results: list[SeriesResult]
    skipped: list[Skip]


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
        on_scan_done: called once with the number of slices to score.
        on_slice: called after each slice is scored or skipped.
    """
    if policy.baselines is not None:
        policy.baselines.require_model(backend.model.identity)
    found = scan(paths, on_file=on_file)
    if on_scan_done is not None:
        on_scan_done(found.n_slices)
    results, skipped = [], list(found.skipped)
    if found.series:
        with decoder_pool(min(workers, found.n_slices), decoders) as pool:
            for series in found.series:
                result, bad = score_series(series, backend, policy, batch_size, workers, on_slice, pool)
                skipped.extend(bad)
                if result.slices:
                    results.append(result)
    return ScoringRun(backend.model, results, skipped)
