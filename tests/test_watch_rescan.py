"""The watched folder looks again at a file that changed after it was refused or taken."""

from __future__ import annotations

from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service.database import Database
from tfkt_edge.service.watch import FolderWatcher


def test_a_file_finished_after_it_was_refused_is_taken(tmp_path):
    """A network share closes a file half-written, then another host finishes it."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = (EXAMPLES / "clinical" / "abdomen.dcm").read_bytes()
    db = Database(tmp_path / "results.sqlite")
    try:
        watcher = FolderWatcher(inbox, db, received=lambda _: None, settle=1.0)
        path = inbox / "slice.dcm"
        path.write_bytes(data[:100])  # not yet a readable DICOM file
        now = 1000.0
        for step in range(4):  # closed (inotify) or settled (stat): either way it is looked at and refused
            watcher.scan_once(now + 2 * step)
        assert path in watcher.refused and list(db.instance_files()) == []
        with path.open("ab") as handle:
            handle.write(data[100:])
        for step in range(4, 8):
            watcher.scan_once(now + 2 * step)
        assert path in watcher.taken and list(db.instance_files()) == [path]
    finally:
        db.close()


def test_a_file_finished_while_the_service_was_down_is_read_again_after_the_restart(tmp_path):
    """Taken with its pixel data cut short; finished by its writer while no watcher ran; read again at the next start."""
    import sqlite3

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = (EXAMPLES / "clinical" / "abdomen.dcm").read_bytes()
    path = inbox / "slice.dcm"
    path.write_bytes(data[: len(data) // 2])  # the header is whole: the file is taken, its pixels will not decode
    db = Database(tmp_path / "results.sqlite")
    try:
        watcher = FolderWatcher(inbox, db, received=lambda _: None, settle=1.0)
        for step in range(4):
            watcher.scan_once(1000.0 + 2 * step)
        assert db.instance_files() == {path: (len(data) // 2, path.stat().st_mtime_ns)}
        db._write([("UPDATE instances SET processed_at = 1, skip_reason = 'truncated'", ())])  # as the scorer would
    finally:
        db.close()
    with path.open("ab") as handle:
        handle.write(data[len(data) // 2:])
    db = Database(tmp_path / "results.sqlite")
    try:
        watcher = FolderWatcher(inbox, db, received=lambda _: None, settle=1.0)
        for step in range(4):
            watcher.scan_once(2000.0 + 2 * step)
        assert db.instance_files() == {path: (len(data), path.stat().st_mtime_ns)}
    finally:
        db.close()
    row = sqlite3.connect(str(tmp_path / "results.sqlite")).execute("SELECT processed_at, skip_reason FROM instances").fetchone()
    assert row == (None, None)  # queued to be scored again
