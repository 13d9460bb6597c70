"""Files to slice scores with header reading and decoding both in worker processes, for many-core hosts.

With decoding threads the calling process reads every header itself, under the GIL,
which caps a run however many cores and GPUs the host has (benchmarks/README.md,
`calling_process.py`, has the figures). Here a worker process is given a few paths at a time; it
reads their headers and decodes each slice into a slot of a shared-memory ring laid out
as batches (pipeline/slots.py), and each full batch is scored where it lies. The calling
thread only lists files, groups slices into series and runs the backend. Files holding several frames
(Enhanced CT) are read in a worker and decoded frame by frame afterwards.

Results are taken in the order the files were listed, so duplicates resolve, and
skips are reported, as with decoding threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tfkt_edge.backends import Backend
from tfkt_edge.backends.base import pin
from tfkt_edge.dicom import Scanner, Skip, SliceRef
from tfkt_edge.dicom.discover import iter_files
from tfkt_edge.pipeline.batching import Batcher
from tfkt_edge.pipeline.feed import score_slices
from tfkt_edge.pipeline.slots import SharedSlots, read_into_slots
from tfkt_edge.verdict.domain import ImageStats
from tfkt_edge.verdict.result import SliceScore

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


class _Ring:
    """The shared block as consecutive batches: a file handed out at absolute position p decodes into slot
    p % capacity, and batch b is positions b*size .. (b+1)*size - 1, scored straight from the block."""

    def __init__(self, batches: int, size: int, side: int):
        self.size, self.capacity = size, batches * size
        self.shared = SharedSlots(self.capacity, side)
        self.handed = 0  # positions handed out to jobs
        self.released = 0  # positions whose batch has been scored: free again
        self.filling = 0  # the first position of the batch being filled

    def fits(self, n: int) -> bool:
        return self.handed + n <= self.released + self.capacity

    def take(self, n: int) -> list[int]:
        slots = [(self.handed + i) % self.capacity for i in range(n)]
        self.handed += n
        return slots

    def batch(self, start: int) -> np.ndarray:
        """The (size, 1, S, S) view of the batch whose first absolute position is ``start``."""
        first = start % self.capacity
        return self.shared.array[first:first + self.size, None]


def score_files(
    paths: Iterable[Path],
    backend: Backend,
    pool: ProcessPoolExecutor,
    scanner: Scanner,
    batch_size: int | None = None,
    workers: int = 2,
    on_file: Callable[[Path], None] | None = None,
    on_scan_done: Callable[[int], None] | None = None,
    on_slice: Callable[[], None] | None = None,
    texture: bool = True,
) -> tuple[list[SliceScore], list[Skip]]:
    """Read, decode and score everything under ``paths`` with ``pool``'s processes; every file's header goes
    to ``scanner``. Returns the scored slices and the slices that failed to decode or score. ``texture``: as
    `feed.score_slices`.

    Each file gets the next slot of a ring laid out as batches, and a full batch is scored where it lies:
    the calling thread copies no pixel. A file that gives no slice to score there (a skip, a duplicate, an
    Enhanced CT) leaves its slot empty, and the rows of that batch are gathered before scoring."""
    batcher = Batcher(backend, batch_size, own_buffers=False)
    size, contract = batcher.size, backend.model.contract
    jobs = max(workers + 2, -(-2 * size // CHUNK))  # one job in each worker's hands, two waiting
    # Batches: those the jobs in flight decode into, the one filling, two at the backend, one spare.
    ring = _Ring(-(-jobs * CHUNK // size) + 4, size, contract.size)
    unpin = pin(backend, ring.shared.array)
    in_flight: deque[Skip | tuple[Future[Any], list[int]]] = deque()
    source = _chunks(iter_files(paths), CHUNK)
    waiting: list[Path] | Skip | None = None  # a group that did not fit in the ring yet
    rows: list[tuple[SliceRef, ImageStats] | None] = []  # the filling batch, one entry per position
    multi_frame: list[SliceRef] = []
    total = 0

    def release(end: int) -> Callable[[], None]:
        def scored() -> None:
            ring.released = max(ring.released, end)
        return scored

    def close_batch() -> None:
        """Score the filled (or, at the end, last) batch where it lies; its slots are freed once scored,
        in turn after the batches before it."""
        kept = [i for i, row in enumerate(rows) if row is not None]
        view = ring.batch(ring.filling)[: len(rows)]
        batch = None if not kept else view if len(kept) == len(rows) else view[kept]  # gathered around empty slots
        batcher.submit_view(batch, [row for row in rows if row is not None], release(ring.filling + ring.size))
        ring.filling += ring.size
        rows.clear()

    def take(path: Path, found: list[SliceRef] | Skip, decoded: list[ImageStats | Skip] | None) -> int:
        """Record one file's header and its decoded slice (or an empty row); return the slices it adds."""
        if on_file is not None:
            on_file(path)
        kept = scanner.add(path, found)
        row: tuple[SliceRef, ImageStats] | None = None
        if kept and decoded is None:
            multi_frame.extend(kept)
        elif kept and decoded is not None:
            (ref,), (outcome,) = kept, decoded
            if isinstance(outcome, Skip):
                batcher.skipped.append(outcome)
            else:
                row = (ref, outcome)
            if on_slice is not None:
                on_slice()
        rows.append(row)
        if len(rows) == ring.size:
            close_batch()
        return len(kept)

    try:
        while True:
            while True:  # hand out jobs while their slots are free; skips met while listing keep their turn
                group = waiting if waiting is not None else next(source, None)
                waiting = None
                if group is None:
                    break
                if isinstance(group, Skip):
                    in_flight.append(group)
                    continue
                if not ring.fits(len(group)):
                    waiting = group
                    break
                slots = ring.take(len(group))
                job = pool.submit(read_into_slots, group, contract, backend.model.stats_pool, ring.shared.name,
                                  slots, ring.capacity, texture)
                in_flight.append((job, slots))
            if not in_flight:
                if waiting is None:
                    break
                batcher.flush()  # every free slot is in batches at the backend: take their scores
                if not ring.fits(len(waiting)):  # cannot happen with the ring sized above; never loop on it
                    raise RuntimeError(f"{len(waiting)} files do not fit in a decoding ring of {ring.capacity}")
                continue
            item = in_flight.popleft()
            if isinstance(item, Skip):
                scanner.add(item.path, item)
                continue
            for path, found, decoded in item[0].result():
                total += take(path, found, decoded)
        if rows:
            close_batch()
        batcher.flush()
    except BaseException:
        batcher.abandon()
        raise
    finally:
        unpin()
        ring.shared.close_after([item[0] for item in in_flight if not isinstance(item, Skip)])
    if on_scan_done is not None:
        on_scan_done(total)
    if multi_frame:
        scored, skipped = score_slices(multi_frame, backend, batch_size, workers, on_slice, pool, texture)
        batcher.scored += scored
        batcher.skipped += skipped
    return batcher.scored, batcher.skipped
