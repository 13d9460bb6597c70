"""The watched folder looks again at a file that changed after it was refused or taken."""

from __future__ import annotations

import time
from pathlib import Path

from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service.database import Database
from tfkt_edge.service.watch import FolderWatcher


def scan_until(watcher: FolderWatcher, done, clock: list[float], seconds: float = 30.0) -> None:
    """Scan (its clock stepping 2 s a scan, past the settle time) until ``done()``: kernel events reach the watcher
    through watchdog's observer thread, so they may land a moment after the write."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the watcher never got there"
        clock[0] += 2.0
        watcher.scan_once(clock[0])
        time.sleep(0.05)


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
        clock = [1000.0]
        scan_until(watcher, lambda: path in watcher.refused, clock)  # closed (inotify) or settled (stat): refused
        assert list(db.instance_files()) == []
        with path.open("ab") as handle:
            handle.write(data[100:])
        scan_until(watcher, lambda: path in watcher.taken, clock)
        assert list(db.instance_files()) == [path]
        watcher.close()
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
        scan_until(watcher, lambda: path in watcher.taken, [1000.0])
        watcher.close()
        assert db.instance_files() == {path: (len(data) // 2, path.stat().st_mtime_ns)}
        db._write([("UPDATE instances SET processed_at = 1, skip_reason = 'truncated'", ())])  # as the scorer would
    finally:
        db.close()
    with path.open("ab") as handle:
        handle.write(data[len(data) // 2:])
    db = Database(tmp_path / "results.sqlite")
    try:
        watcher = FolderWatcher(inbox, db, received=lambda _: None, settle=1.0)
        scan_until(watcher, lambda: db.instance_files().get(path, (0,))[0] == len(data), [2000.0])
        watcher.close()
        assert db.instance_files() == {path: (len(data), path.stat().st_mtime_ns)}
    finally:
        db.close()
    row = sqlite3.connect(str(tmp_path / "results.sqlite")).execute("SELECT processed_at, skip_reason FROM instances").fetchone()
    assert row == (None, None)  # queued to be scored again


def test_a_file_whose_name_is_not_utf8_is_refused_once_with_its_reason(tmp_path, caplog):
    """A real CT slice named with a Latin-1 byte: the database cannot hold the name; the feed refuses the file
    once, says why in one line, and goes on taking the others (before: a traceback every poll, for ever)."""
    import logging
    import os

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = (EXAMPLES / "clinical" / "abdomen.dcm").read_bytes()
    odd = Path(os.fsdecode(bytes(inbox) + b"/ab\xffc.dcm"))
    odd.write_bytes(data)
    good = inbox / "good.dcm"
    db = Database(tmp_path / "results.sqlite")
    try:
        watcher = FolderWatcher(inbox, db, received=lambda _: None, settle=1.0)
        clock = [1000.0]
        with caplog.at_level(logging.WARNING, logger="tfkt_edge"):
            scan_until(watcher, lambda: odd in watcher.refused, clock)
            good.write_bytes(data)
            scan_until(watcher, lambda: good in watcher.taken, clock)
            for _ in range(3):
                clock[0] += 2.0
                watcher.scan_once(clock[0])
        lines = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
        assert len(lines) == 1 and "\\udcff" in lines[0]
        assert list(db.instance_files()) == [good]
        watcher.close()
    finally:
        db.close()


def test_two_exports_of_one_study_make_no_new_revision_at_a_restart(tmp_path):
    """The same real slices exported twice (two folders, same SOP Instance UIDs): after a restart over unchanged
    data neither copy is taken again, so the judged series is not reopened as a new revision."""
    import sqlite3

    inbox = tmp_path / "inbox"
    data = (EXAMPLES / "clinical" / "abdomen.dcm").read_bytes()
    copies = [inbox / "export1" / "slice.dcm", inbox / "export2" / "slice.dcm"]
    for copy in copies:
        copy.parent.mkdir(parents=True)
        copy.write_bytes(data)
    db = Database(tmp_path / "results.sqlite")
    try:
        watcher = FolderWatcher(inbox, db, received=lambda _: None, settle=1.0)
        scan_until(watcher, lambda: all(c in watcher.taken for c in copies), [1000.0])
        watcher.close()
        db._write([("UPDATE instances SET processed_at = 1", ()), ("UPDATE series SET completed_at = 1", ())])  # judged
    finally:
        db.close()
    db = Database(tmp_path / "results.sqlite")
    try:
        watcher = FolderWatcher(inbox, db, received=lambda _: None, settle=1.0)
        assert all(c in watcher.taken for c in copies)
        assert [watcher.scan_once(t) for t in (2000.0, 2010.0, 2020.0)] == [0, 0, 0]  # past the settle time: nothing new
        watcher.close()
    finally:
        db.close()
    row = sqlite3.connect(str(tmp_path / "results.sqlite")).execute("SELECT revision, completed_at FROM series").fetchone()
    assert row == (0, 1)
