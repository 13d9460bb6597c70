"""Headers read in a thread of their own, handed over file by file, so decoding and inference start at once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tfkt_edge.dicom import Scanner, SliceRef, read_headers


class HeaderReader:
    """Reads headers in a thread of its own and hands over each file's slices as soon as it is read, so
    decoding and inference start at once and header parsing overlaps inference (which releases the GIL).
    Iterate it in the calling thread; an error while reading is raised there."""

    _DONE = object()

    def __init__(self, paths: Iterable[Path], scanner: Scanner, on_file: Callable[[Path], None] | None = None,
                 on_done: Callable[[int], None] | None = None, queued: int = 256):
        self._paths, self._scanner, self._on_file, self._on_done = paths, scanner, on_file, on_done
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="headers", daemon=True)

    def _put(self, item: object) -> bool:
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
            assert isinstance(item, SliceRef)  # the reading thread puts slices, then one (_DONE, ...) tuple
            yield item

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
