"""DICOM ingestion: files and folders -> ordered CT series, and reasons for the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tfkt_edge.dicom import reasons
from tfkt_edge.dicom.discover import iter_files
from tfkt_edge.dicom.pixels import load_hu, load_stored
from tfkt_edge.dicom.series import Series, group_series
from tfkt_edge.dicom.slices import Skip, SliceRef, read_slices

__all__ = ["ScanResult", "Series", "Skip", "SliceRef", "load_hu", "load_stored", "reasons", "scan"]


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


def scan(paths: Iterable[Path], on_file: Callable[[Path], None] | None = None) -> ScanResult:
    """Read the headers of everything under ``paths`` and group the CT slices.

    Args:
        paths: files, folders (walked recursively) or DICOMDIR files.
        on_file: called after each file is read (for progress display).
    """
    result = ScanResult()
    owners: dict[str, tuple[Path, list[SliceRef]]] = {}
    anonymous: list[SliceRef] = []
    for item in iter_files(paths):
        if isinstance(item, Skip):
            result.skipped.append(item)
            continue
        found = read_slices(item)
        if on_file is not None:
            on_file(item)
        if isinstance(found, Skip):
            result.skipped.append(found)
            continue
        uid = found[0].sop_instance_uid
        if not uid:
            anonymous.extend(found)
            continue
        if uid in owners:
            # Of two copies of one instance keep the larger: a truncated copy must not hide the whole one.
            kept, _ = owners[uid]
            if _size(item) > _size(kept):
                owners[uid] = (item, found)
                item, kept = kept, item
            result.skipped.append(Skip(item, reasons.DUPLICATE.format(uid=uid, other=kept)))
            continue
        owners[uid] = (item, found)
    result.series = group_series([ref for _, found in owners.values() for ref in found] + anonymous)
    return result
