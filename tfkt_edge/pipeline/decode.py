"""Decoding one slice in a worker: pixels, HU, the model input, its image statistics; and the decoding pool.

Workers are threads by default; processes are the choice for compressed series on hosts with cores to spare
(a GPU host): the JPEG 2000 decoder holds the GIL, so decoding threads run one at a time
(benchmarks/README.md has the figures).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager

import numpy as np

from tfkt_edge.dicom import Skip, SliceRef, load_stored, reasons
from tfkt_edge.dicom.gpu_decoding import enable_gpu_decoding
from tfkt_edge.model.preprocess import PreprocessContract, preprocess, reading_view
from tfkt_edge.verdict.domain import POOL, ImageStats, image_stats, kernel_class
from tfkt_edge.verdict.noise import region_of


def decode_slice(ref: SliceRef, contract: PreprocessContract) -> np.ndarray | Skip:
    """Decode and preprocess one slice, or say why it cannot be."""
    try:
        return preprocess(load_stored(ref), contract, ref.slope, ref.intercept)
    except Exception as exc:  # truncated or corrupt pixel data: a reason, never a traceback
        return Skip(ref.path, reasons.PIXELS_UNREADABLE.format(detail=reasons.one_line(exc)))


def decode_with_stats(ref: SliceRef, contract: PreprocessContract, pool: int = POOL,
                      texture: bool = True) -> tuple[np.ndarray, ImageStats] | Skip:
    """`decode_slice` plus the domain check's image statistics (pooled ``pool``x: `ModelInfo.stats_pool`;
    the reported texture figures only with ``texture``), both in the decoding worker; the image handed on is
    the reader's view of it (`preprocess.reading_view`)."""
    image = decode_slice(ref, contract)
    if isinstance(image, Skip):
        return image
    stats = image_stats(image, contract, pool, texture)  # physics on the slice as stored, before the reader's view
    head = region_of(ref.body_part) == "head"
    return reading_view(image, kernel_class(ref.kernel or ""), head, contract), stats


# The streak index and the NPS mean frequency are reported as series medians and decide nothing; they cost
# about 1.7 ms of a core per slice taken, in one burst of FFTs that holds a core the model's threads were
# using (benchmarks/README.md). A series takes them on its first slice and every TEXTURE_EVERY-th up to
# TEXTURE_DENSE slices (3 on a 20-slice series, 8 by the 64th), then every TEXTURE_SPARSE-th (16 on 300).
TEXTURE_EVERY, TEXTURE_DENSE, TEXTURE_SPARSE = 8, 64, 32


class TextureSampler:
    """Which slices of a run get the reported texture figures, in the order the slices are handed over: of each
    series the first, every ``every``-th up to ``dense`` slices, then every ``sparse``-th; none when not
    ``enabled`` (a run whose output shows no texture figure)."""

    def __init__(self, every: int = TEXTURE_EVERY, dense: int = TEXTURE_DENSE, sparse: int = TEXTURE_SPARSE,
                 enabled: bool = True):
        self.every, self.dense, self.sparse, self.enabled = every, dense, sparse, enabled
        self._seen: Counter[str] = Counter()

    def __call__(self, ref: SliceRef) -> bool:
        if not self.enabled:
            return False
        count = self._seen[ref.series_instance_uid]
        self._seen[ref.series_instance_uid] = count + 1
        return count % (self.every if count < self.dense else self.sparse) == 0


DECODERS = ("threads", "processes")


def one_blas_thread() -> AbstractContextManager[object]:
    """BLAS (numpy's matrix products: the resize rule of other matrix sizes) on one thread while a run scores:
    the decoding workers are a run's parallelism, and BLAS's own threads beside the model's stall both
    (280 one-slice real series in-process: 1.55-1.73 s with them, 1.32-1.40 s without; benchmarks/README.md).
    Process-wide while it lasts, as BLAS's thread count is."""
    from threadpoolctl import threadpool_limits

    limits: AbstractContextManager[object] = threadpool_limits(limits=1, user_api="blas")
    return limits


def _start_decoding_process() -> None:
    """A decoding process: BLAS on one thread for its life, GPU decoding where it works."""
    one_blas_thread()  # the limit holds from here; never restored, as the process is the pool's
    enable_gpu_decoding()


def decoder_pool(workers: int, decoders: str = "threads") -> Executor:
    """``workers`` decoding threads, or processes (spawned, not forked: the parent may hold CUDA
    or ONNX Runtime threads; each decodes lossless JPEG 2000 and JPEG on the GPU where nvImageCodec
    works: dicom/gpu_decoding.py). A single worker is always a thread."""
    if decoders not in DECODERS:
        raise ValueError(f"decoders must be one of {DECODERS}, not {decoders!r}")
    if decoders == "threads" or workers <= 1:
        return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_decoding_process)


def stop_broken(pool: Executor) -> None:
    """Stop a process pool that a dead process broke, so nothing waits on it forever.

    A worker spawned while the pool was breaking can block for good on the task queue's lock that the
    dead process held, and CPython's executor then waits for it at shutdown and at interpreter exit.
    The executor offers no public handle on its processes, hence the private ``_processes``."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() lets go of them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
