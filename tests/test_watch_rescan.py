"""The watched folder looks again at a file that changed after it was refused or taken."""

from __future__ import annotations

from tfkt_edge.cli.demo import EXAMPLES
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
        assert path in watcher.refused and db.instance_paths() == []
        with path.open("ab") as handle:
            handle.write(data[100:])
        for step in range(4, 8):
            watcher.scan_once(now + 2 * step)
        assert path in watcher.taken and db.instance_paths() == [path]
    finally:
        db.close()
