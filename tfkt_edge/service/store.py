"""Received instances on disk, named by their UIDs and written atomically."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class InvalidUID(ValueError):
    """A UID that is empty, too long or not digits and dots (so never a path component a caller chose)."""


def check_uid(value: object, name: str) -> str:
    text = str(value or "").strip().rstrip("\x00")
    if not (0 < len(text) <= 64 and UID.fullmatch(text)):
        raise InvalidUID(f"{name} {text[:70]!r} is not a valid UID")
    return text


def instance_uids(ds) -> tuple[str, str, str]:
    """(SOP, series, study) instance UIDs of a dataset, each checked.

    Raises:
        InvalidUID: naming the first one that is missing or malformed.
    """
    return (check_uid(ds.get("SOPInstanceUID"), "SOPInstanceUID"),
            check_uid(ds.get("SeriesInstanceUID"), "SeriesInstanceUID"),
            check_uid(ds.get("StudyInstanceUID"), "StudyInstanceUID"))


class InstanceStore:
    """``root/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def unwritable(self) -> str | None:
        """Why an instance could not be stored now (the store read-only or gone), or None."""
        if not self.root.is_dir():
            return f"the store {self.root} is gone"
        if not os.access(self.root, os.W_OK | os.X_OK):
            return f"the store {self.root} is not writable"
        return None

    def path_for(self, study: str, series: str, sop: str) -> Path:
        return self.root / check_uid(study, "StudyInstanceUID") / check_uid(series, "SeriesInstanceUID") / \
            f"{check_uid(sop, 'SOPInstanceUID')}.dcm"

    def write(self, study: str, series: str, sop: str, write: Callable[[object], None]) -> Path:
        """Write through ``write(file)`` to a temporary file, flush it to disk, then rename it into place."""
        target = self.path_for(study, series, sop)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return target
