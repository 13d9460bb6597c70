"""Decoding workers feeding batches: slices in order, at most ``prefetch`` in flight, so memory stays bounded
however long the series is. Decoding processes write each slice into a ring of shared-memory slots
(`pipeline.slots`) instead of pickling it back."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import nullcontext
from typing import Any

from tfkt_edge.backends import Backend
from tfkt_edge.dicom import Skip, SliceRef
from tfkt_edge.pipeline.batching import Batcher, StoredBatcher
from tfkt_edge.pipeline.decode import TextureSampler, decode_with_stats, decoder_pool, one_blas_thread
from tfkt_edge.pipeline.slots import SharedSlots, decode_into_slot
from tfkt_edge.pipeline.stored import decode_stored_into
from tfkt_edge.verdict.result import SliceScore


def score_slices(
    refs: Iterable[SliceRef],
    backend: Backend,
    batch_size: int | None = None,
    workers: int = 2,
    on_slice: Callable[[], None] | None = None,
    pool: Executor | None = None,
    texture: bool = True,
) -> tuple[list[SliceScore], list[Skip]]:
    """Score slices in order; slices whose pixels fail to decode become skips.

    A model that takes stored pixels (`pipeline.stored`) is handed int16 batches whose window and statistics
    it takes itself, which decoding threads write into row by row (`batching.StoredBatcher`); not from decoding
    processes (their shared slots hold model inputs: float32).

    Args:
        batch_size: slices per inference batch (None: the backend's preferred, `backends.base.default_batch`).
        pool: decoding workers to use (default: a pool of ``workers`` made for this call).
        texture: take the reported texture figures (streak index, NPS mean frequency) on the slices a
            `decode.TextureSampler` picks; without, they are None.
    """
    contract, stats_pool = backend.model.contract, backend.model.stats_pool
    in_flight: deque[tuple[SliceRef, Future[Any], int]] = deque()
    source = iter(refs)
    sampled = TextureSampler(enabled=texture)
    with one_blas_thread(), nullcontext(pool) if pool is not None else decoder_pool(workers) as decoders:
        processes = isinstance(decoders, ProcessPoolExecutor)
        stored = bool(getattr(backend, "takes_stored", False)) and not processes
        batcher: Batcher | StoredBatcher = StoredBatcher(backend, batch_size) if stored else Batcher(backend, batch_size)
        prefetch = max(2 * batcher.size, 2 * workers)
        # Decoding processes write into shared memory instead of pickling each slice back (1 MiB).
        shared = SharedSlots(prefetch, contract.size) if processes else None
        free = list(range(prefetch))

        def room() -> bool:  # for one more slice in flight
            return batcher.free_rows() > 0 if isinstance(batcher, StoredBatcher) else len(in_flight) < prefetch

        try:
            while True:
                while room():
                    ref = next(source, None)
                    if ref is None:
                        break
                    slot = free.pop() if shared is not None else -1
                    job: Future[Any]
                    if isinstance(batcher, StoredBatcher):  # written into its batch row: no slot
                        job = decoders.submit(decode_stored_into, ref, contract, stats_pool, sampled(ref),
                                              batcher.take_row())
                    elif shared is not None:
                        job = decoders.submit(decode_into_slot, ref, contract, stats_pool, shared.name, slot, prefetch,
                                              sampled(ref))
                    else:
                        job = decoders.submit(decode_with_stats, ref, contract, stats_pool, sampled(ref))
                    in_flight.append((ref, job, slot))
                if not in_flight:
                    break
                ref, future, slot = in_flight.popleft()
                decoded = future.result()
                if isinstance(batcher, StoredBatcher):  # a skip too: it holds a row
                    batcher.add(ref, decoded)
                elif isinstance(decoded, Skip):
                    batcher.skipped.append(decoded)
                elif shared is not None:
                    batcher.add(ref, shared.array[slot], decoded)
                else:
                    batcher.add(ref, *decoded)
                if shared is not None:
                    free.append(slot)
                if on_slice is not None:
                    on_slice()
            batcher.flush()
            if isinstance(batcher, StoredBatcher):
                batcher.add_texture(decoders)
        finally:
            if shared is not None:
                shared.close_after([future for _, future, _ in in_flight])
            else:
                for _, future, _ in in_flight:
                    future.cancel()
    return batcher.scored, batcher.skipped
