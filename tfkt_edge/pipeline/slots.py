"""Decoded slices handed from decoding processes to the scoring thread through shared memory.

A decoding process would otherwise pickle each preprocessed 512x512 float32 slice
(1 MiB) back through a pipe. Instead the scoring thread owns a ring of slots in one
shared-memory block; a process writes the slice into the slot it was given and
returns only the small image statistics (or the skip reason).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfkt_edge.dicom import Skip, SliceRef, read_slices
from tfkt_edge.errors import DecodingError
from tfkt_edge.model.preprocess import PreprocessContract
from tfkt_edge.pipeline.decode import TextureSampler, decode_with_stats
from tfkt_edge.verdict.domain import ImageStats

if TYPE_CHECKING:
    from multiprocessing.shared_memory import SharedMemory

SHM = Path("/dev/shm")


def _check_room(nbytes: int) -> None:
    """Refuse a block larger than the shared memory left (a container's /dev/shm is often 64 MiB): its
    pages are only taken when written, so a process would die of SIGBUS mid-run instead."""
    if not SHM.is_dir():
        return  # elsewhere the system sizes it
    free = shutil.disk_usage(SHM).free
    if nbytes > free:
        raise DecodingError(f"decoding processes need {-(-nbytes >> 20)} MiB of shared memory and {SHM} has "
                            f"{free >> 20} MiB free: give it more (docker run --shm-size=1g), use fewer --workers "
                            "or a smaller --batch-size, or decode with --decoders threads")


class SharedSlots:
    """``count`` slices of ``size`` x ``size`` float32 in one shared-memory block, owned by the caller."""

    def __init__(self, count: int, size: int):
        self.count, self.size = count, size
        from multiprocessing.shared_memory import SharedMemory  # only with decoding processes: 15 ms to import

        _check_room(count * size * size * 4)
        self._memory = SharedMemory(create=True, size=count * size * size * 4)
        self.name = self._memory.name
        self.array: np.ndarray = np.ndarray((count, size, size), dtype=np.float32, buffer=self._memory.buf)

    def close(self) -> None:
        """Release and remove the block (a process still writing keeps its own mapping until it is done)."""
        del self.array
        self._memory.close()
        self._memory.unlink()

    def close_after(self, jobs: Iterable[Future[Any]]) -> None:
        """Cancel the jobs not yet started, wait for the running ones (an error or Ctrl-C: no process may
        still write into the block), then close it."""
        jobs = list(jobs)
        for job in jobs:
            job.cancel()
        for job in jobs:
            if not job.cancelled():
                job.exception()
        self.close()


_attached: dict[str, tuple[SharedMemory, np.ndarray]] = {}  # in each decoding process: the current block


def _slots(name: str, count: int, size: int) -> np.ndarray:
    if name not in _attached:
        for memory, _ in _attached.values():  # a block from an earlier run: let it go
            memory.close()
        _attached.clear()
        from multiprocessing.shared_memory import SharedMemory

        memory = SharedMemory(name=name)
        _attached[name] = (memory, np.ndarray((count, size, size), dtype=np.float32, buffer=memory.buf))
    return _attached[name][1]


def decode_into_slot(ref: SliceRef, contract: PreprocessContract, pool: int, name: str, slot: int,
                     count: int, texture: bool = True) -> ImageStats | Skip:
    """In a decoding process: decode and preprocess ``ref`` into ``slot`` of the block ``name``; return its
    image statistics (pooled ``pool``x; the texture figures only with ``texture``), or why it cannot be decoded."""
    decoded = decode_with_stats(ref, contract, pool, texture)
    if isinstance(decoded, Skip):
        return decoded
    image, stats = decoded
    _slots(name, count, contract.size)[slot] = image
    return stats


# One file as a reading process hands it back: its path, its slices or skip reason, and for a single-slice
# file the outcome of decoding that slice into its slot (statistics, or why it failed); None: not decoded there.
FileRead = tuple[Path, "list[SliceRef] | Skip", "list[ImageStats | Skip] | None"]


def read_into_slots(paths: list[Path], contract: PreprocessContract, pool: int, name: str, slots: list[int],
                    count: int, texture: bool = True) -> list[FileRead]:
    """In a decoding process: read each file's header and decode its slice into its slot of the block
    ``name`` (one slot per path), so the parent handles no header and no pixel. A file holding several
    frames (Enhanced CT) is only read: its frames are decoded one by one afterwards. The texture figures are
    taken on the slices a `TextureSampler` of this group picks (none without ``texture``)."""
    done: list[FileRead] = []
    sampler = TextureSampler(enabled=texture)
    for path, slot in zip(paths, slots):
        found = read_slices(path)
        if isinstance(found, Skip) or len(found) != 1:
            done.append((path, found, None))
            continue
        done.append((path, found, [decode_into_slot(found[0], contract, pool, name, slot, count, sampler(found[0]))]))
    return done
