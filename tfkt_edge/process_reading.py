"""Files to slice scores with header reading and decoding both in worker processes, for many-core hosts.

With decoding threads the calling process reads every header itself (about 0.9 ms of
one core per file, under the GIL) and hands each slice out and back: that caps a run
near 700 slices/s however many cores and GPUs the host has. Here a worker process is
given a few paths at a time; it reads their headers and decodes each slice into a
shared-memory slot (handover.py). The calling thread only lists files, groups slices
into series, copies slots into batches and runs the backend. Files holding several
frames (Enhanced CT) are read in a worker and decoded frame by frame afterwards.

Results are taken in the order the files were listed, so duplicates resolve, and
skips are reported, as with decoding threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from tfkt_edge.backends import Backend
from tfkt_edge.dicom import Scanner, Skip, SliceRef
from tfkt_edge.dicom.discover import iter_files
from tfkt_edge.handover import SharedSlots, read_into_slots
from tfkt_edge.scoring import Batcher, SliceScore, score_slices

# Files per job once a run is under way: enough to make a job's hand-over cost small beside its work.
# The first jobs are smaller (1, 2, 4, ...), so a short series still spreads over every worker.
CHUNK = 16


def _chunks(items: Iterator[Path | Skip], largest: int) -> Iterator[Skip | list[Path]]:
    """Paths grouped into lists of 1, 2, 4, ... up to ``largest``; a skip met on the way comes alone, in order."""
    size = 1
    group: list[Path] = []
    for item in items:
        if isinstance(item, Skip):
            if group:
                yield group
                group = []
            yield item
            continue
        group.append(item)
        if len(group) == size:
            yield group
            group, size = [], min(largest, 2 * size)
    if group:
        yield group


def score_files(
    paths: Iterable[Path],
    backend: Backend,
    pool: ProcessPoolExecutor,
    scanner: Scanner,
    batch_size: int = 16,
    workers: int = 2,
    on_file: Callable[[Path], None] | None = None,
    on_scan_done: Callable[[int], None] | None = None,
    on_slice: Callable[[], None] | None = None,
) -> tuple[list[SliceScore], list[Skip]]:
    """Read, decode and score everything under ``paths`` with ``pool``'s processes; every file's header goes
    to ``scanner``. Returns the scored slices and the slices that failed to decode or score."""
    batcher = Batcher(backend, batch_size)
    contract = backend.model.contract
    jobs = max(workers + 2, -(-2 * batcher.size // CHUNK))  # one job in each worker's hands, two waiting
    shared = SharedSlots(jobs * CHUNK, contract.size)
    free = [list(range(g * CHUNK, (g + 1) * CHUNK)) for g in range(jobs)]
    in_flight: deque[Skip | tuple[Future, list[int]]] = deque()
    source = _chunks(iter_files(paths), CHUNK)
    multi_frame: list[SliceRef] = []
    total = 0

    def take(path: Path, found: list[SliceRef] | Skip, decoded: list | None, slot: int) -> int:
        """Record one file's header and its decoded slice; return how many slices it adds to the run."""
        if on_file is not None:
            on_file(path)
        kept = scanner.add(path, found)
        if not kept:
            return 0
        if decoded is None:
            multi_frame.extend(kept)
            return len(kept)
        (ref,), (outcome,) = kept, decoded
        if isinstance(outcome, Skip):
            batcher.skipped.append(outcome)
        else:
            batcher.add(ref, shared.array[slot], outcome)
        if on_slice is not None:
            on_slice()
        return 1

    try:
        while True:
            while free:  # a job per free group of slots; skips found while listing wait their turn in order
                group = next(source, None)
                if group is None:
                    break
                if isinstance(group, Skip):
                    in_flight.append(group)
                    continue
                slots = free.pop()
                job = pool.submit(read_into_slots, group, contract, backend.model.stats_pool, shared.name,
                                  slots[:len(group)], len(shared.array))
                in_flight.append((job, slots))
            if not in_flight:
                break
            item = in_flight.popleft()
            if isinstance(item, Skip):
                scanner.add(item.path, item)
                continue
            future, slots = item
            for (path, found, decoded), slot in zip(future.result(), slots):
                total += take(path, found, decoded, slot)
            free.append(slots)
    finally:
        shared.close_after([item[0] for item in in_flight if not isinstance(item, Skip)])
    if on_scan_done is not None:
        on_scan_done(total)
    if multi_frame:
        scored, skipped = score_slices(multi_frame, backend, batch_size, workers, on_slice, pool)
        batcher.scored += scored
        batcher.skipped += skipped
    batcher.flush()
    return batcher.scored, batcher.skipped
