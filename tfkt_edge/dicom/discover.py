"""Turning the paths a user gives into candidate files, DICOMDIRs resolved."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import tfkt_edge.dicom.reasons as reasons
from tfkt_edge.dicom.lazy import import_pydicom
from tfkt_edge.dicom.slices import MEDIA_DIRECTORY, Skip

DICOMDIR_NAME = "DICOMDIR"


_INDEX_NAMES = {"DICOMDIR", "DIRFILE"}
_MAX_INDEX_DEPTH = 4  # a root DICOMDIR, its per-patient DIRFILEs, and a margin; deeper is a loop or a lie


def _is_index(path: Path, record_type: str) -> bool:
    """Whether a referenced file is itself a DICOMDIR (Media Storage Directory), as CD exports nest them."""
    if record_type == "IMAGE" and path.name.upper() not in _INDEX_NAMES:
        return False
    import_pydicom()
    import pydicom.filereader

    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY


def _dicomdir_references(path: Path, depth: int = 0, fileset_root: Path | None = None) -> Iterator[Path | Skip]:
    """The files a DICOMDIR references; nested DICOMDIR/DIRFILE indexes are followed to the files they reference.

    Referenced File IDs are relative to the root of the file-set: the folder of the DICOMDIR the user named,
    also in the nested indexes of CD exports (a Philips export's S21610/DIRFILE names S21610/S3010/DIRFILE,
    not S21610/S21610/S3010/DIRFILE). An index whose IDs are relative to its own folder is read too: the
    root is tried first, then the index's folder."""
    import_pydicom()
    import pydicom

    try:
        fileset = pydicom.dcmread(path)
        records = fileset.DirectoryRecordSequence
    except Exception:
        yield Skip(path, reasons.UNREADABLE.format(detail="DICOMDIR without a readable directory record sequence"))
        return
    root = fileset_root or path.parent
    bases = [root] if path.parent == root else [root, path.parent]
    for record in records:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        # Guard against a DICOMDIR pointing outside its own folder.
        if any(part in ("", ".", "..") or "/" in part or "\\" in part for part in parts):
            continue
        # ISO 9660 media are often copied with lower-cased names
        candidates = [base.joinpath(*name) for base in bases for name in (parts, [p.lower() for p in parts])]
        referenced = next((c for c in candidates if c.is_file()), candidates[0])
        if not referenced.is_file():
            yield Skip(referenced, reasons.MISSING_REFERENCE)
        elif _is_index(referenced, str(record.get("DirectoryRecordType", ""))):
            if depth + 1 >= _MAX_INDEX_DEPTH or referenced.resolve() == path.resolve():
                yield Skip(referenced, reasons.UNREADABLE.format(detail="DICOMDIR indexes nested too deep, or in a loop"))
            else:
                yield from _dicomdir_references(referenced, depth + 1, root)
        else:
            yield referenced


def _special(path: Path) -> str | None:
    """What a non-regular file is (a FIFO, a device, a socket), or None for a regular file or a folder."""
    try:
        mode = path.stat().st_mode  # follows links: a link to /dev/zero is a device
    except OSError:
        return None
    for test, kind in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return None


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder, onerror=None):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def iter_files(paths: Iterable[Path]) -> Iterator[Path | Skip]:
    """Expand files and folders (recursively) into candidate files, each once.

    A DICOMDIR given by name yields the files it references; DICOMDIRs met while
    walking a folder are themselves skipped, since the walk reaches their files.
    Paths that do not exist are yielded as skips.
    """
    seen: set[Path] = set()

    def fresh(candidate: Path) -> bool:
        key = candidate.resolve()
        if key in seen:
            return False
        seen.add(key)
        return True

    for path in paths:
        path = Path(path)
        kind = _special(path)
        if kind is not None:
            yield Skip(path, reasons.NOT_REGULAR.format(kind=kind))
            continue
        if path.is_dir():
            for candidate in _walk(path):
                kind = _special(candidate)
                if kind is not None:  # reading a pipe or /dev/zero would hang or never end
                    yield Skip(candidate, reasons.NOT_REGULAR.format(kind=kind))
                elif fresh(candidate):
                    yield candidate
        elif path.is_file() and path.name.upper() == DICOMDIR_NAME:
            fresh(path)
            for item in _dicomdir_references(path):
                if isinstance(item, Skip) or fresh(item):
                    yield item
        elif path.is_file():
            if fresh(path):
                yield path
        else:
            yield Skip(path, "no such file or folder")
