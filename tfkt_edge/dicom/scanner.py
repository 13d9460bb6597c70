"""Files and folders -> grouped, ordered CT series and a reason for every file left out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import tfkt_edge.dicom.reasons as reasons
from tfkt_edge.dicom.discover import iter_files
from tfkt_edge.dicom.series import Series, group_series
from tfkt_edge.dicom.slices import Skip, SliceRef, read_slices


@dataclass
class ScanResult:
    series: list[Series] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return sum(len(s.slices) for s in self.series)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


class Scanner:
    """Gathers files' CT slices into series as their headers are read: a caller can start work on each
    file's slices at once (``add``) and take the grouped, ordered series at the end (``result``)."""

    def __init__(self) -> None:
        self.skipped: list[Skip] = []
        # By (series, SOP instance): an instance UID reused by another series (a sender's bug, or a copy
        # re-filed) names two different images, and neither may evict the other.
        self._owners: dict[tuple[str, str], tuple[Path, list[SliceRef]]] = {}
        self._anonymous: list[SliceRef] = []

    def add(self, item: Path, found: list[SliceRef] | Skip) -> list[SliceRef]:
        """Record one file's header; return its slices if they are now part of the result (a duplicate
        copy of an instance is kept only when it is larger than the copy seen before)."""
        if isinstance(found, Skip):
            self.skipped.append(found)
            return []
        uid = found[0].sop_instance_uid
        if not uid:
            self._anonymous.extend(found)
            return found
        key = (found[0].series_instance_uid, uid)
        if key in self._owners:
            # Of two copies of one instance keep the larger: a truncated copy must not hide the whole one.
            kept, _ = self._owners[key]
            taken = _size(item) > _size(kept)
            if taken:
                self._owners[key] = (item, found)
                item, kept = kept, item
            self.skipped.append(Skip(item, reasons.DUPLICATE.format(uid=uid, other=kept)))
            return found if taken else []
        self._owners[key] = (item, found)
        return found

    def result(self) -> ScanResult:
        refs = [ref for _, found in self._owners.values() for ref in found] + self._anonymous
        return ScanResult(group_series(refs), list(self.skipped))


def read_headers(paths: Iterable[Path], on_file: Callable[[Path], None] | None = None) -> Iterator[tuple[Path, list[SliceRef] | Skip]]:
    """Each file under ``paths`` with its CT slices or the reason it is skipped, as its header is read."""
    for item in iter_files(paths):
        if isinstance(item, Skip):
            yield item.path, item
            continue
        found = read_slices(item)
        if on_file is not None:
            on_file(item)
        yield item, found


def scan(paths: Iterable[Path], on_file: Callable[[Path], None] | None = None) -> ScanResult:
    """Read the headers of everything under ``paths`` and group the CT slices.

    Args:
        paths: files, folders (walked recursively) or DICOMDIR files.
        on_file: called after each file is read (for progress display).
    """
    scanner = Scanner()
    for item, found in read_headers(paths, on_file):
        scanner.add(item, found)
    return scanner.result()
