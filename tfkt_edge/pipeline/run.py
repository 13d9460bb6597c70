"""A whole run: find, read, score and judge everything under some paths; or one series already found.

One pool serves every series of a run. With decoding processes the headers are read in the processes too
(`pipeline.processes`), so the calling process does not cap a many-core host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from tfkt_edge.backends import Backend
from tfkt_edge.dicom import Scanner, Series, Skip
from tfkt_edge.errors import DecodingError
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.pipeline.decode import decoder_pool, stop_broken
from tfkt_edge.pipeline.feed import score_slices
from tfkt_edge.pipeline.headers import HeaderReader
from tfkt_edge.pipeline.processes import score_files
from tfkt_edge.verdict.judge import Judge, lost_slices
from tfkt_edge.verdict.policy import AlertPolicy
from tfkt_edge.verdict.result import SeriesResult


@dataclass(frozen=True)
class ScoringRun:
    model: ModelInfo
    results: list[SeriesResult]
    skipped: list[Skip]


def score_series(
    series: Series,
    backend: Backend,
    policy: AlertPolicy = AlertPolicy(),
    batch_size: int | None = None,
    workers: int = 2,
    on_slice: Callable[[], None] | None = None,
    pool: Executor | None = None,
) -> tuple[SeriesResult, list[Skip]]:
    scored, skipped = score_slices(series.slices, backend, batch_size, workers, on_slice, pool)
    return Judge(policy, backend.model)(series, scored, lost_slices(series, scored)), skipped


def score_paths(
    paths: Iterable[Path],
    backend: Backend,
    policy: AlertPolicy = AlertPolicy(),
    batch_size: int | None = None,
    workers: int = 2,
    on_file: Callable[[Path], None] | None = None,
    on_scan_done: Callable[[int], None] | None = None,
    on_slice: Callable[[], None] | None = None,
    decoders: str = "threads",
    texture: bool = True,
) -> ScoringRun:
    """Find, read, score and judge everything under ``paths``.

    Args:
        decoders: "threads" or "processes" for the ``workers`` decoding workers.
        on_file: called after each file's header is read.
        on_scan_done: called once all headers are read, with the number of slices to score (scoring
            starts before: slices are decoded as their files are read).
        on_slice: called after each slice is scored or skipped.
        texture: take the reported texture figures (streak index, NPS mean frequency: series physics, shown by
            documents and reports, deciding nothing); a run whose output shows none can leave them out.
    """
    if policy.baselines is not None:
        policy.baselines.require_model(backend.model.identity)
    scanner = Scanner()
    with decoder_pool(workers, decoders) as pool:
        if isinstance(pool, ProcessPoolExecutor):  # headers are read in the processes too (pipeline/processes.py)
            try:
                scored, failed = score_files(paths, backend, pool, scanner, batch_size, workers, on_file,
                                             on_scan_done, on_slice, texture)
            except BrokenProcessPool:
                stop_broken(pool)
                raise DecodingError("a decoding process ended before finishing its files (killed, out of memory, "
                                    "or a crash in a native decoder); nothing was reported: run again, with fewer "
                                    "--workers or with --decoders threads") from None
        else:
            with HeaderReader(paths, scanner, on_file, on_scan_done) as refs:
                scored, failed = score_slices(refs, backend, batch_size, workers, on_slice, pool, texture)
    found = scanner.result()
    judged = Judge(policy, backend.model)
    by_slice = {(s.ref.path, s.ref.frame): s for s in scored}
    results = []
    for series in found.series:  # judged in anatomical order, whatever order the files were read in
        slices = [by_slice[key] for ref in series.slices if (key := (ref.path, ref.frame)) in by_slice]
        lost = lost_slices(series, slices, found.skipped)
        if slices or lost:  # a series none of whose slices could be scored is an alert, not an absence
            results.append(judged(series, slices, lost))
    kept = {ref.path for series in found.series for ref in series.slices}  # not a copy superseded by a larger one
    return ScoringRun(backend.model, results, found.skipped + [skip for skip in failed if skip.path in kept])
