"""Feeding the service from a folder that a scanner exports to, instead of from the network.

A file is taken once it is written and closed. On Linux the kernel says so
(inotify, through watchdog: a file closed after writing, or renamed into place): a
file created while watching is taken when its writer closes it, however long
the writer pauses. Files that inotify cannot vouch for (those already there
at start, in folders created meanwhile, on network shares written by another
host, or everything where inotify is unavailable) are taken once their size
and modification time have not changed for ``settle`` seconds and no process
on this machine holds them open for writing (/proc). Files are
scored where they are: nothing in the watched folder is moved, renamed or
altered. Files already recorded in the database (before a restart) are not
taken again unless their size or modification time changed since.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydicom.errors import InvalidDicomError

from tfkt_edge.dicom.deflated import InflateLimitError, read_dataset
from tfkt_edge.render.shown import visible
from tfkt_edge.service.database import Database, UidCollision
from tfkt_edge.service.scp import STORAGE_CLASSES
from tfkt_edge.service.store import InvalidUID, instance_uids

log = logging.getLogger("tfkt_edge.service")
HEADER_TAGS = ["SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"]


class KernelEvents:
    """Linux inotify through watchdog: which files were closed after writing (or moved in), which are being
    written. Sub-folders, including those created later, are watched by watchdog itself."""

    def __init__(self, folder: Path):
        from watchdog.events import (
            FileClosedEvent,
            FileCreatedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers.inotify import InotifyObserver  # Linux only: ImportError elsewhere

        events: queue.SimpleQueue = queue.SimpleQueue()  # (written and closed?, path)

        class Handler(FileSystemEventHandler):
            def on_closed(self, event) -> None:
                events.put((True, event.src_path))

            def on_moved(self, event) -> None:  # renamed into place: complete
                events.put((True, event.dest_path))

            def on_created(self, event) -> None:  # open for writing until it is closed
                events.put((False, event.src_path))

            on_modified = on_created

        self._events = events
        self._observer = InotifyObserver()
        self._observer.schedule(Handler(), str(folder), recursive=True,
                                event_filter=[FileClosedEvent, FileMovedEvent, FileCreatedEvent, FileModifiedEvent])
        self._observer.start()

    def read(self) -> tuple[set[Path], set[Path], bool]:
        """(closed after writing or moved in, being written, events may have been lost)."""
        closed: set[Path] = set()
        writing: set[Path] = set()
        while True:
            try:
                done, raw = self._events.get_nowait()
            except queue.Empty:
                break
            path = Path(os.fsdecode(raw))
            if done:
                closed.add(path)
                writing.discard(path)
            else:
                writing.add(path)
        return closed, writing, not self._observer.is_alive()

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=10)


def open_for_writing(folder: Path) -> set[Path] | None:
    """Files under ``folder`` that some process on this machine holds open for writing (Linux /proc);
    None where /proc cannot tell. Used for files inotify could not vouch for."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    prefix, found = str(folder) + os.sep, set()
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            entries = list(os.scandir(fd_dir))
        except OSError:
            continue  # gone, or not ours to read
        for entry in entries:
            try:
                target = os.readlink(entry.path)
                if not target.startswith(prefix):
                    continue
                flags = int((fd_dir.parent / "fdinfo" / entry.name).read_text().split("flags:")[1].split()[0], 8)
            except (OSError, IndexError, ValueError):
                continue
            if flags & (os.O_WRONLY | os.O_RDWR):
                found.add(Path(target))
    return found


def ingest(path: Path, db: Database, identity: tuple[int, int] | None = None) -> str | None:
    """Record one settled file as a received instance; return why it was not taken, or None."""
    try:
        ds = read_dataset(path, stop_before_pixels=True, specific_tags=HEADER_TAGS)
    except InflateLimitError as exc:
        return str(exc)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        return f"not a readable DICOM file ({type(exc).__name__})"
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in STORAGE_CLASSES:
        return f"SOP class {sop_class or '(none)'} is not CT or Enhanced CT Image Storage"
    try:
        sop, series, study = instance_uids(ds)
    except InvalidUID as exc:
        return str(exc)
    try:
        db.record_instance(sop, series, study, path, "watch", identity)
    except UidCollision as exc:
        return f"{exc}: a UID collision, the recorded instance is kept"
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class FolderWatcher(threading.Thread):
    def __init__(self, folder: Path, db: Database, received: Callable[[str], None], settle: float = 1.0,
                 poll: float = 0.25):
        super().__init__(name="watch", daemon=True)
        self.folder, self.db, self.received, self.settle, self.poll = folder, db, received, settle, poll
        # path -> (size, mtime_ns) when taken or refused: a file that changes afterwards (a network share
        # finishing a file another host closed half-written) is looked at again, not written off for good.
        # Remembered across restarts: a file changed while the service was down is read again too.
        # Every file taken or refused is remembered, not only the one an instance's row names: two exports of one
        # study hold the same instances, and a restart must not take the other copy as a new arrival.
        self.taken: dict[Path, tuple[int, int] | None] = {p: known or _identity(p) for p, known in db.instance_files().items()}
        self.refused: dict[Path, tuple[int, int] | None] = {}
        for path, (identity, refused) in db.watched_files().items():
            (self.refused if refused is not None else self.taken)[path] = identity
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, unchanged since)
        self._closed: set[Path] = set()  # inotify: written and closed, not yet taken
        self._writing: set[Path] = set()  # inotify: opened for writing, not yet closed
        self._halt = threading.Event()
        try:
            self.inotify: KernelEvents | None = KernelEvents(folder)
        except (ImportError, OSError) as exc:
            log.warning("inotify unavailable (%s): files are taken after %.1f s without change", exc, settle)
            self.inotify = None

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                try:
                    self.scan_once(time.monotonic())
                except Exception:
                    log.exception("watching %s failed; trying again", self.folder)
                self._halt.wait(self.poll)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the kernel event observer (run() does this when it ends)."""
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None

    def _read_inotify(self, inotify: KernelEvents) -> None:
        closed, writing, lost = inotify.read()
        self._writing = (self._writing | writing) - closed
        self._closed |= closed
        if lost:  # the observer stopped (a kernel queue overflow among others): trust settling for everything
            self._writing.clear()

    def scan_once(self, now: float) -> int:
        """Take every settled new file; return how many were taken."""
        taken = 0
        busy: set[Path] | None = None  # files open for writing, looked up once per scan when needed
        if self.inotify is not None:
            self._read_inotify(self.inotify)
        for root, dirs, files in os.walk(self.folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(root) / name
                if name.startswith("."):
                    continue
                if path in self.taken or path in self.refused:
                    known = self.taken if path in self.taken else self.refused
                    if _identity(path) == known[path]:
                        continue
                    del known[path]  # changed since: read it again once it is closed or settles
                    self._seen.pop(path, None)
                if path in self._closed:
                    self._closed.discard(path)
                    self._seen.pop(path, None)
                elif path in self._writing:
                    continue  # its writer has not closed it yet
                elif not self._settled(path, now):
                    continue
                else:
                    busy = open_for_writing(self.folder) if busy is None else busy
                    if path in (busy or ()):
                        self._seen.pop(path, None)
                        continue  # quiet, but its writer still holds it open
                identity = _identity(path)
                reason = self._ingest(path, identity)
                if reason is None:
                    self.taken[path] = identity
                    taken += 1
                    self.received("")
                else:
                    self.refused[path] = identity
                    log.warning("skipped %s: %s", visible(path), reason)
                self._remember(path, identity, reason)
        return taken

    def _ingest(self, path: Path, identity: tuple[int, int] | None) -> str | None:
        """`ingest`, with what no file may do to the feed: a file whose name the database cannot hold, or one
        whose recording fails, is refused with its reason (once, until it changes), never retried in a loop."""
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            return "its name is not valid UTF-8 and cannot be recorded: rename the file"
        try:
            return ingest(path, self.db, identity)
        except Exception as exc:
            return f"could not be recorded ({type(exc).__name__}: {str(exc)[:160]})"

    def _remember(self, path: Path, identity: tuple[int, int] | None, reason: str | None) -> None:
        """Keep the file's fate across restarts (in memory only for a name the database cannot hold)."""
        try:
            self.db.remember_file(path, identity, reason)
        except Exception as exc:  # a name SQLite cannot hold (UnicodeEncodeError), a database that cannot write now
            # (sqlite3.Error): this run still knows it
            log.debug("not remembered across restarts: %s (%s)", visible(path), exc)

    def _settled(self, path: Path, now: float) -> bool:
        try:
            stat = path.stat()
        except OSError:
            return False  # renamed or removed meanwhile
        size, mtime, since = self._seen.get(path, (-1, -1, now))
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
            self._seen[path] = (stat.st_size, stat.st_mtime_ns, now)
            return False
        if now - since < self.settle:
            return False
        del self._seen[path]
        return True
