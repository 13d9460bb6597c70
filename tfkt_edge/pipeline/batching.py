"""Decoded slices into batches, each scored by the backend while the next fills."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from tfkt_edge.backends import Backend
from tfkt_edge.backends.base import staging, submit
from tfkt_edge.dicom import Skip, SliceRef, reasons
from tfkt_edge.pipeline.stored import StoredSlice, graph_stats
from tfkt_edge.verdict.domain import ImageStats
from tfkt_edge.verdict.result import SliceScore, slice_score

Scored = list[tuple[SliceRef, ImageStats]]  # the slices of one batch, in its rows' order


class Batcher:
    """Collects decoded slices into batches and scores each full batch; NaN scores become skips.

    Two batch buffers alternate: while the backend scores one (on a GPU, without holding the calling
    thread: `backends.base.submit`), the other fills. A buffer is refilled only after its scores are in.
    A caller that lays its batches out itself (pipeline/processes.py) hands them over with ``submit_view``.
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


class StoredBatcher:
    """Collects slices for a stored-input model (`pipeline.stored`) into int16 batches and scores each full
    batch; the statistics come back from the model with the scores. ONNX Runtime scores in the calling
    thread, so one buffer serves: it is refilled only after its batch has been scored."""

    def __init__(self, backend: Backend, batch_size: int):
        side = backend.model.contract.size
        self.size = max(1, batch_size)
        self.backend = backend
        self._stored = np.empty((self.size, 1, side, side), dtype=np.int16)
        self._rescale = np.empty((self.size, 2), dtype=np.float32)
        self.pending: list[tuple[SliceRef, StoredSlice]] = []
        self.scored: list[SliceScore] = []
        self.skipped: list[Skip] = []

    def add(self, ref: SliceRef, item: StoredSlice) -> None:
        row = len(self.pending)
        self._stored[row, 0] = item.pixels
        self._rescale[row] = (item.slope, item.intercept)
        self.pending.append((ref, item))
        if len(self.pending) == self.size:
            self.flush()

    def flush(self) -> None:
        """Score what is pending."""
        if not self.pending:
            return
        n = len(self.pending)
        scores, stats = self.backend.infer_stored(self._stored[:n], self._rescale[:n])  # type: ignore[attr-defined]
        for (ref, item), value, row in zip(self.pending, scores, stats):
            if np.isfinite(value):
                measured = item.stats if item.stats is not None else graph_stats(row, item.texture)
                self.scored.append(slice_score(ref, float(value), measured, self.backend.model))
            else:  # never let a NaN into a median, where it would read as "not below the threshold"
                self.skipped.append(Skip(ref.path, reasons.NON_FINITE))
        self.pending = []
