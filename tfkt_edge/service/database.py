"""The service's SQLite file: every acknowledged instance, every scored slice, every result and its deliveries.

What the database says is what happened: an instance row is committed before
the C-STORE success goes back; a series is completed, its result event
created and one delivery row per sink added in one transaction, so after a
crash (even kill -9) a restarted service finds unscored instances still
unscored, unfinished series still open, and each result exactly once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tfkt_edge.dicom import SliceRef
from tfkt_edge.errors import InputError
from tfkt_edge.verdict.domain import ImageStats

# SQLite's application_id of a tfkt-edge database ("TFKE"): the marker read before a file is touched.
APPLICATION_ID = 0x54464B45
_TABLES = {"instances", "slices", "series", "events", "deliveries"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    series_instance_uid TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    path TEXT NOT NULL,
    calling_ae TEXT,
    received_at REAL NOT NULL,
    processed_at REAL,
    skip_reason TEXT
);
CREATE INDEX IF NOT EXISTS instances_unprocessed ON instances (processed_at, received_at);
CREATE TABLE IF NOT EXISTS slices (
    sop_instance_uid TEXT NOT NULL,
    frame INTEGER NOT NULL,
    series_instance_uid TEXT NOT NULL,
    ref TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (sop_instance_uid, frame)
);
CREATE INDEX IF NOT EXISTS slices_series ON slices (series_instance_uid);
CREATE TABLE IF NOT EXISTS slice_stats (
    sop_instance_uid TEXT NOT NULL,
    frame INTEGER NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (sop_instance_uid, frame)
);
CREATE TABLE IF NOT EXISTS series (
    series_instance_uid TEXT PRIMARY KEY,
    study_instance_uid TEXT NOT NULL,
    first_received REAL NOT NULL,
    last_received REAL NOT NULL,
    completed_at REAL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series_instance_uid TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    alert INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id INTEGER NOT NULL,
    sink TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    delivered_at REAL,
    last_error TEXT,
    PRIMARY KEY (event_id, sink)
);
CREATE TABLE IF NOT EXISTS watched_files (
    path TEXT PRIMARY KEY,
    file_size INTEGER,
    file_mtime_ns INTEGER,
    refused TEXT
);
"""


# Columns added after the first release, in order: (table, column, definition).
ADDED_COLUMNS = (
    ("series", "revision", "INTEGER NOT NULL DEFAULT 0"),  # series judged again when late instances arrive
    ("instances", "file_size", "INTEGER"),  # a watched file's size and time when taken, to notice it changed
    ("instances", "file_mtime_ns", "INTEGER"),
    ("series", "released_at", "REAL"),  # the association that sent the series was released
    ("deliveries", "gave_up_at", "REAL"),  # a delivery that failed too often: parked, shown by `results`
)


class UidCollision(ValueError):
    """An instance whose SOP Instance UID another series already holds."""


def ref_to_json(ref: SliceRef) -> str:
    data = asdict(ref)
    data["path"] = str(ref.path)
    return json.dumps(data)


def ref_from_json(text: str) -> SliceRef:
    data = json.loads(text)
    data["path"] = Path(data["path"])
    return SliceRef(**data)


def check_ours(path: Path) -> None:
    """Raise InputError, touching nothing, unless ``path`` is absent, empty, or a tfkt-edge database.

    The SQLite header carries the application_id (bytes 68-71); a database made before the
    marker existed is recognised, read-only, by its tables.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not header:
        return
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise InputError(f"{path} is not a tfkt-edge database (not an SQLite file)")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == APPLICATION_ID:
        return
    if application_id == 0:
        try:
            probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                probe.close()
        except sqlite3.Error as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
        if tables >= _TABLES:
            return  # a tfkt-edge database from before the marker
    raise InputError(f"{path} is not a tfkt-edge database (it belongs to another application); "
                     "give --db a file of its own")


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the database file, None when it is gone."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


class Database:
    """One connection shared by the receiving threads and the worker, serialised by a lock.

    The file must be new or a tfkt-edge database (``check_ours``): another application's
    SQLite file is refused before anything is written to it."""

    def __init__(self, path: Path):
        check_ours(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self.write_error: str | None = None  # the last write's failure (disk full...), None once writes succeed
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        try:
            # Before WAL, so a new file carries the marker in its header at once.
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged instance survives power loss too
            self._db.executescript(SCHEMA)
            for table, column, definition in ADDED_COLUMNS:  # a database written by an earlier version gains them
                if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            # The database's own identity: event ids restart in a new database, so a key a receiver can
            # deduplicate on names the database too.
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('database_uuid', ?)", (str(uuid.uuid4()),))
            (self.uuid,) = self._db.execute("SELECT value FROM meta WHERE key = 'database_uuid'").fetchone()
            self._file = _file_identity(path)
        except sqlite3.DatabaseError as exc:  # a truncated or damaged file: one line, exit 2, nothing written
            self._db.close()
            raise InputError(f"cannot open the results database {path}: {exc} (restore it from a backup, or move "
                             "it aside to start a new one)") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def lost(self) -> str | None:
        """Why the database file is no longer the one this node opened (deleted, or replaced by another file),
        or None. SQLite itself would go on writing into the deleted file's inode, acknowledging what no
        restart will see."""
        now = _file_identity(self.path)
        if now is None:
            return f"the results database {self.path} was deleted while the node ran"
        if now != self._file:
            return f"the results database {self.path} was replaced by another file while the node ran"
        return None

    def unusable(self) -> str | None:
        """Why nothing can be recorded now (the file lost, or the last write failed), or None; a lost file is
        remembered as the write error, as a refused write would be."""
        gone = self.lost()
        if gone is not None:
            self.write_error = gone
        return self.write_error

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the lock: committed on success, rolled back on any exception.
        Refused (sqlite3.OperationalError) once the file is lost (`lost`): nothing is acknowledged into it."""
        with self._lock:
            gone = self.lost()
            if gone is not None:
                self.write_error = gone
                raise sqlite3.OperationalError(gone)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                # SQLite may already have rolled back (a full disk does): a second ROLLBACK would raise
                # "no transaction is active" and hide the error that matters.
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(exc, sqlite3.Error):
                    self.write_error = str(exc)
                raise
            self.write_error = None

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._transaction() as db:
            for sql, args in statements:
                db.execute(sql, args)

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # receiving
    def record_instance(self, sop: str, series: str, study: str, path: Path, calling_ae: str,
                        identity: tuple[int, int] | None = None) -> None:
        """Record a stored instance (a re-sent one is processed again) and touch its series.
        ``identity`` is a watched file's (size, mtime_ns) when it was taken.

        Raises:
            UidCollision: the SOP Instance UID is recorded already for another series; nothing is changed (the
                recorded instance would otherwise move to the other series and leave its own series short).
        """
        now = time.time()
        size, mtime = identity or (None, None)
        with self._transaction() as db:
            found = db.execute("SELECT series_instance_uid FROM instances WHERE sop_instance_uid = ?", (sop,)).fetchall()
            if found and found[0][0] != series:
                raise UidCollision(f"SOP Instance UID {sop} is recorded already in series {found[0][0]}")
            for sql, args in self._record_statements(sop, series, study, path, calling_ae, now, size, mtime):
                db.execute(sql, args)

    @staticmethod
    def _record_statements(sop, series, study, path, calling_ae, now, size, mtime) -> list[tuple[str, tuple]]:
        return [
            ("INSERT INTO instances (sop_instance_uid, series_instance_uid, study_instance_uid, path, calling_ae,"
             " received_at, file_size, file_mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sop_instance_uid)"
             " DO UPDATE SET path = excluded.path, calling_ae = excluded.calling_ae, received_at = excluded.received_at,"
             " processed_at = NULL, skip_reason = NULL, file_size = excluded.file_size,"
             " file_mtime_ns = excluded.file_mtime_ns", (sop, series, study, str(path), calling_ae, now, size, mtime)),
            ("DELETE FROM slices WHERE sop_instance_uid = ?", (sop,)),
            # An instance of a series already judged opens it again: it is judged anew, over all its slices,
            # once quiet, as its next revision (never a verdict that leaves late slices out).
            ("INSERT INTO series (series_instance_uid, study_instance_uid, first_received, last_received)"
             " VALUES (?, ?, ?, ?) ON CONFLICT (series_instance_uid) DO UPDATE SET last_received = excluded.last_received,"
             " revision = series.revision + (series.completed_at IS NOT NULL), completed_at = NULL",
             (series, study, now, now)),
        ]

    def release_series(self, series: str) -> None:
        """The association that sent this series was released: judge it without waiting for the quiet timeout,
        unless another instance arrives first."""
        self._write([("UPDATE series SET released_at = ? WHERE series_instance_uid = ? AND completed_at IS NULL",
                      (time.time(), series))])

    def instance_files(self) -> dict[Path, tuple[int, int] | None]:
        """Every recorded instance's path, with its (size, mtime_ns) when taken (None if not recorded)."""
        rows = self._read("SELECT path, file_size, file_mtime_ns FROM instances")
        return {Path(path): None if size is None else (size, mtime) for path, size, mtime in rows}

    def remember_file(self, path: Path, identity: tuple[int, int] | None, refused: str | None = None) -> None:
        """A watched file taken (``refused`` None) or refused with its reason, as it was then: a restart does not
        read it again unless it changed (a second export of the same instances is not a new arrival)."""
        size, mtime = identity or (None, None)
        self._write([("INSERT INTO watched_files (path, file_size, file_mtime_ns, refused) VALUES (?, ?, ?, ?)"
                      " ON CONFLICT (path) DO UPDATE SET file_size = excluded.file_size,"
                      " file_mtime_ns = excluded.file_mtime_ns, refused = excluded.refused",
                      (str(path), size, mtime, refused))])

    def watched_files(self) -> dict[Path, tuple[tuple[int, int] | None, str | None]]:
        """Every watched file remembered: path -> ((size, mtime_ns) or None, the refusal reason or None)."""
        rows = self._read("SELECT path, file_size, file_mtime_ns, refused FROM watched_files")
        return {Path(path): (None if size is None else (size, mtime), refused) for path, size, mtime, refused in rows}

    # scoring
    def unprocessed(self, limit: int) -> list[tuple[str, str, Path, float]]:
        """(SOP instance, series, path, received at) of instances waiting to be scored, oldest first."""
        rows = self._read("SELECT sop_instance_uid, series_instance_uid, path, received_at FROM instances"
                          " WHERE processed_at IS NULL ORDER BY received_at LIMIT ?", (limit,))
        return [(sop, series, Path(path), received) for sop, series, path, received in rows]

    def record_scores(self, scored: list[tuple[SliceRef, float, ImageStats | None]], skipped: dict[str, str],
                      processed: list[str], received: dict[str, float] | None = None) -> None:
        """Store slice scores and image statistics and mark instances processed, in one transaction.

        ``received``: when each instance was received as it was picked up. An instance received again since
        (the same instance sent twice at once: its file replaced while it was read) keeps none of these
        results and stays unprocessed, so its second arrival is scored in its turn and nothing is lost."""
        now = time.time()

        def current(sop: str) -> tuple[str, tuple]:
            if received is None or sop not in received:
                return "", ()
            return " AND EXISTS (SELECT 1 FROM instances WHERE sop_instance_uid = ? AND received_at = ?)", (sop, received[sop])

        statements: list[tuple[str, tuple]] = []
        for ref, score, stats in scored:
            guard, args = current(ref.sop_instance_uid)
            frame = -1 if ref.frame is None else ref.frame
            statements.append((f"INSERT OR REPLACE INTO slices SELECT ?, ?, ?, ?, ? WHERE 1{guard}",
                               (ref.sop_instance_uid, frame, ref.series_instance_uid, ref_to_json(ref), score, *args)))
            if stats is not None:
                statements.append((f"INSERT OR REPLACE INTO slice_stats SELECT ?, ?, ? WHERE 1{guard}",
                                   (ref.sop_instance_uid, frame, json.dumps(stats.to_dict()), *args)))
        for sop in processed:
            picked = received.get(sop) if received is not None else None
            condition = "" if picked is None else " AND received_at = ?"
            statements.append((f"UPDATE instances SET processed_at = ?, skip_reason = ? WHERE sop_instance_uid = ?{condition}",
                               (now, skipped.get(sop), sop, *(() if picked is None else (picked,)))))
        self._write(statements)

    def due_series(self, quiet_since: float) -> list[str]:
        """Open series with none left to score and no instance since ``quiet_since`` or since their
        association was released."""
        rows = self._read(
            "SELECT s.series_instance_uid FROM series s WHERE s.completed_at IS NULL"
            " AND (s.last_received <= ? OR s.released_at >= s.last_received)"
            " AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_instance_uid = s.series_instance_uid"
            " AND i.processed_at IS NULL) ORDER BY s.last_received", (quiet_since,))
        return [r[0] for r in rows]

    def series_slices(self, series: str) -> list[tuple[SliceRef, float, ImageStats | None]]:
        """(ref, score, image statistics or None) for every scored slice of a series."""
        rows = self._read("SELECT s.ref, s.score, t.stats FROM slices s LEFT JOIN slice_stats t"
                          " ON t.sop_instance_uid = s.sop_instance_uid AND t.frame = s.frame"
                          " WHERE s.series_instance_uid = ?", (series,))
        return [(ref_from_json(ref), score, ImageStats(**json.loads(stats)) if stats else None)
                for ref, score, stats in rows]

    def series_callers(self, series: str) -> list[str]:
        """The calling AE titles that sent instances of a series (empty for a watched folder)."""
        rows = self._read("SELECT DISTINCT calling_ae FROM instances WHERE series_instance_uid = ? AND calling_ae IS NOT NULL"
                          " AND calling_ae != '' ORDER BY calling_ae", (series,))
        return [r[0] for r in rows]

    def series_skips(self, series: str) -> list[tuple[Path, str]]:
        return [(Path(p), r) for p, r in self._read(
            "SELECT path, skip_reason FROM instances WHERE series_instance_uid = ? AND skip_reason IS NOT NULL", (series,))]

    def complete_series(self, series: str, alert: bool, payload: dict, sinks: list[str]) -> int | None:
        """Close the series and create the result event of its current revision with a delivery per sink;
        None if that revision is judged already."""
        now = time.time()
        with self._transaction() as db:
            closed = db.execute("UPDATE series SET completed_at = ? WHERE series_instance_uid = ?"
                                " AND completed_at IS NULL", (now, series)).rowcount
            if not closed:
                return None  # nothing written: the empty transaction commits
            (revision,), = db.execute("SELECT revision FROM series WHERE series_instance_uid = ?", (series,)).fetchall()
            # The events key is unique: the series UID for the first verdict, UID@N for its N-th revision.
            key = series if revision == 0 else f"{series}@{revision}"
            payload = {**payload, "revision": revision}
            event = db.execute(
                "INSERT INTO events (series_instance_uid, created_at, alert, payload) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (series_instance_uid) DO NOTHING", (key, now, int(alert), json.dumps(payload)))
            event_id = event.lastrowid if event.rowcount else None
            if event_id is not None:
                db.executemany("INSERT INTO deliveries (event_id, sink) VALUES (?, ?)", [(event_id, sink) for sink in sinks])
        return event_id

    # delivering
    def pending_deliveries(self, sink: str, now: float) -> list[tuple[int, int, dict]]:
        rows = self._read(
            "SELECT d.event_id, d.attempts, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id"
            " WHERE d.sink = ? AND d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.next_attempt <= ?"
            " ORDER BY d.event_id", (sink, now))
        return [(event_id, attempts, json.loads(payload)) for event_id, attempts, payload in rows]

    def delivered(self, event_id: int, sink: str) -> None:
        self._write([("UPDATE deliveries SET delivered_at = ?, attempts = attempts + 1 WHERE event_id = ? AND sink = ?",
                      (time.time(), event_id, sink))])

    def failed(self, event_id: int, sink: str, error: str, retry_at: float) -> None:
        self._write([("UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt = ?"
                      " WHERE event_id = ? AND sink = ?", (error[:500], retry_at, event_id, sink))])

    def give_up(self, event_id: int, sink: str, error: str) -> None:
        """Park a delivery that failed too often (the dead letters `results` shows); it is not tried again."""
        self._write([("UPDATE deliveries SET attempts = attempts + 1, last_error = ?, gave_up_at = ?"
                      " WHERE event_id = ? AND sink = ?", (error[:500], time.time(), event_id, sink))])

    def undelivered(self) -> dict[int, list[str]]:
        """Per event, the deliveries given up: "sink after N attempts: last error"."""
        rows = self._read("SELECT event_id, sink, attempts, last_error FROM deliveries WHERE gave_up_at IS NOT NULL"
                          " ORDER BY event_id, sink")
        out: dict[int, list[str]] = {}
        for event_id, sink, attempts, error in rows:
            out.setdefault(event_id, []).append(f"{sink} after {attempts} attempts: {error}")
        return out

    # reading back
    def events(self, since: float = 0.0) -> list[dict]:
        rows = self._read("SELECT id, created_at, payload FROM events WHERE created_at >= ? ORDER BY id", (since,))
        return [{"event_id": i, "created_at": t, **json.loads(p)} for i, t, p in rows]

    def gauges(self, latency_buckets: Sequence[float] = ()) -> dict[str, Any]:
        """What the metrics endpoint reports, read from the file itself (so it survives restarts): instances by
        state, slices scored, results by status, deliveries by state and sink, and the seconds from each
        series' last instance to its verdict (count, sum and how many within each of ``latency_buckets``,
        counted by SQLite: a scrape reads no row per verdict however long the node has run)."""
        (received, pending, skipped), = self._read(
            "SELECT COUNT(*), COALESCE(SUM(processed_at IS NULL), 0), COALESCE(SUM(skip_reason IS NOT NULL), 0) FROM instances")
        (scored,), = self._read("SELECT COUNT(*) FROM slices")
        (open_series,), = self._read("SELECT COUNT(*) FROM series WHERE completed_at IS NULL")
        statuses = dict(self._read(
            "SELECT COALESCE(json_extract(payload, '$.series[0].status'), 'nothing-scorable'), COUNT(*) FROM events GROUP BY 1"))
        deliveries = self._read(
            "SELECT sink, COALESCE(SUM(delivered_at IS NULL AND gave_up_at IS NULL), 0), COALESCE(SUM(gave_up_at IS NOT NULL), 0), "
            "COALESCE(SUM(attempts - (delivered_at IS NOT NULL)), 0) FROM deliveries GROUP BY sink")
        within = "".join(f", COALESCE(SUM(t <= {float(b)!r}), 0)" for b in latency_buckets)
        (count, total, *counts), = self._read(
            f"SELECT COUNT(*), COALESCE(SUM(t), 0.0){within} FROM (SELECT MAX(0.0, e.created_at - s.last_received) AS t "
            "FROM events e JOIN series s ON s.series_instance_uid = CASE WHEN instr(e.series_instance_uid, '@') > 0 "
            "THEN substr(e.series_instance_uid, 1, instr(e.series_instance_uid, '@') - 1) ELSE e.series_instance_uid END)")
        return {"instances_received": received, "instances_pending": pending, "instances_skipped": skipped,
                "slices_scored": scored, "series_open": open_series, "results": statuses,
                "deliveries": {sink: {"pending": p, "parked": g, "failed_attempts": f} for sink, p, g, f in deliveries},
                "verdict_seconds": {"count": count, "sum": float(total), "within": dict(zip(latency_buckets, counts))}}

    def counts(self) -> dict[str, int]:
        (instances,), = self._read("SELECT COUNT(*) FROM instances")
        (scored,), = self._read("SELECT COUNT(*) FROM slices")
        (events,), = self._read("SELECT COUNT(*) FROM events")
        return {"instances": instances, "slices_scored": scored, "results": events}
