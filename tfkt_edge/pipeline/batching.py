"""Decoded slices into batches, each scored by the backend while the next fills."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from itertools import repeat

import numpy as np

from tfkt_edge.backends import Backend
from tfkt_edge.backends.base import default_batch, staging, submit
from tfkt_edge.dicom import Skip, SliceRef, reasons
from tfkt_edge.pipeline.stored import StoredSlice, graph_stats, texture_of
from tfkt_edge.verdict.domain import ImageStats
from tfkt_edge.verdict.result import SliceScore, slice_score

Scored = list[tuple[SliceRef, ImageStats]]  # the slices of one batch, in its rows' order


class Batcher:
    """Collects decoded slices into batches and scores each full batch; NaN scores become skips.

    Two batch buffers alternate: while the backend scores one (on a GPU, without holding the calling
    thread: `backends.base.submit`), the other fills. A buffer is refilled only after its scores are in.
    A caller that lays its batches out itself (pipeline/processes.py) hands them over with ``submit_view``.
    """

    def __init__(self, backend: Backend, batch_size: int | None, own_buffers: bool = True):
        limit = backend.max_batch()
        batch_size = default_batch(backend) if batch_size is None else batch_size
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
    """Batches for a stored-input model (`pipeline.stored`) in a ring of ``batches`` int16 batch buffers: each
    slice is handed a row (`take_row`) that its decoding worker writes straight into, in the order the slices
    are added, and a batch is scored in place once its rows are in, so no slice is copied on the way. A row is
    handed out again only after its batch has been scored (`free_rows`); a slice that could not be decoded
    keeps its row, unscored. The statistics come back from the model with the scores."""

    def __init__(self, backend: Backend, batch_size: int | None, batches: int = 3):
        side = backend.model.contract.size
        self.size = max(1, default_batch(backend) if batch_size is None else batch_size)
        self.backend = backend
        self._stored = np.zeros((batches * self.size, 1, side, side), dtype=np.int16)
        self._rescale = np.zeros((batches * self.size, 2), dtype=np.float32)
        self._handed = 0  # rows handed out so far
        self._done = 0  # rows whose batch has been scored
        self.pending: list[tuple[SliceRef, StoredSlice | Skip]] = []
        self.scored: list[SliceScore] = []
        self.skipped: list[Skip] = []
        self.texture_later: list[int] = []  # indices into ``scored`` of the slices whose texture figures wait

    def free_rows(self) -> int:
        return self._done + len(self._stored) - self._handed

    def take_row(self) -> np.ndarray:
        """The next row (contract.size squared, int16) for the next slice to be added; `free_rows` must be > 0."""
        if self.free_rows() <= 0:
            raise RuntimeError("every row of the ring is in use")
        row = self._handed % len(self._stored)
        self._handed += 1
        view: np.ndarray = self._stored[row, 0]
        return view

    def add(self, ref: SliceRef, item: StoredSlice | Skip) -> None:
        """The next slice in row order: what its worker wrote into its row, or why it could not."""
        if not isinstance(item, Skip):
            self._rescale[(self._done + len(self.pending)) % len(self._stored)] = (item.slope, item.intercept)
        self.pending.append((ref, item))
        if len(self.pending) == self.size:
            self.flush()

    def flush(self) -> None:
        """Score what is pending."""
        if not self.pending:
            return
        n, first = len(self.pending), self._done % len(self._stored)
        if any(not isinstance(item, Skip) for _, item in self.pending):
            scores, stats = self.backend.infer_stored(self._stored[first:first + n],  # type: ignore[attr-defined]
                                                      self._rescale[first:first + n])
            for (ref, item), value, row in zip(self.pending, scores, stats):
                if isinstance(item, Skip):
                    self.skipped.append(item)
                elif np.isfinite(value):
                    measured = item.stats if item.stats is not None else graph_stats(row, item.texture)
                    if item.texture_later:
                        self.texture_later.append(len(self.scored))
                    self.scored.append(slice_score(ref, float(value), measured, self.backend.model))
                else:  # never let a NaN into a median, where it would read as "not below the threshold"
                    self.skipped.append(Skip(ref.path, reasons.NON_FINITE))
        else:
            self.skipped.extend(item for _, item in self.pending if isinstance(item, Skip))
        self._done += n
        self.pending = []

    def add_texture(self, pool: Executor) -> None:
        """After the last batch: the texture figures left for later, read again and taken in ``pool``, when the
        model no longer needs the cores (a burst of FFTs beside its threads stalls both of them)."""
        contract = self.backend.model.contract
        figures = pool.map(texture_of, [self.scored[k].ref for k in self.texture_later], repeat(contract))
        for k, texture in zip(self.texture_later, figures):
            if texture is not None and self.scored[k].stats is not None:
                streaks, nps = texture
                stats = replace(self.scored[k].stats, streak_index=streaks, nps_mean_frequency=nps)  # type: ignore[type-var]
                self.scored[k] = replace(self.scored[k], stats=stats)
        self.texture_later = []
