"""Where series results go: the console, a JSON-lines event log, an HTTP webhook.

A sink's ``deliver`` raises on failure; the delivery worker then retries it
later with backoff (the outbox lives in the database, so retries survive a
restart). Each event carries its database id, so a receiver can drop a
repeat: the JSON-lines log does so itself, the webhook sends the id as an
``Idempotency-Key`` header.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Protocol

from rich.console import Console

from tfkt_edge.render.document import series_name
from tfkt_edge.render.shown import markup_safe
from tfkt_edge.verdict.policy import STATUS_TEXT
from tfkt_edge.verdict.record import RunRecord, SeriesRecord


class Sink(Protocol):
    name: str

    def deliver(self, event_id: int, payload: dict) -> None:
        """Hand one series result on; raise to be retried later."""


def one_line(payload: dict) -> tuple[bool, str]:
    """(alert, a one-line verdict) for a stored result (`verdict.record.RunRecord`)."""
    record = RunRecord.from_dict(payload)
    series = record.first
    uid = record.service.get("series_instance_uid") or (series.series_instance_uid if series else "?")
    if series is None:
        return False, f"series {uid}: nothing scorable ({len(record.skipped)} instance(s) skipped)"
    description = series_name(series.description, str(uid))
    verdict = STATUS_TEXT.get(series.status, "RESCAN ALERT" if series.alert else "pass")
    if record.service.get("revision"):  # more instances arrived after the series was judged: this verdict replaces it
        verdict = f"{verdict} (revised, #{record.service['revision']})"
    study = series.study
    who = ", ".join(f"{label} {value}" for value, label in ((study.patient_id, "patient"), (study.accession_number, "accession"),
                                                            (study.station, "station")) if value)
    median = "-" if series.median_score is None else f"{series.median_score:.2f}"
    return series.alert, (f"{verdict}: {description}{f' [{who}]' if who else ''} ({series.n_slices} slices, "
                          f"median {median}{_physics(series)}) {series.reason} [{uid}]")


def _physics(series: SeriesRecord) -> str:
    """", noise 16.1/37.5 HU, Dw 31 cm, SSDE 14.3 mGy": what physics says, beside the score."""
    noise, physics = series.noise or {}, series.physics or {}
    parts = []
    if noise.get("noise_hu") is not None and noise.get("ceiling_hu") is not None:
        parts.append(f"noise {noise['noise_hu']:.1f}/{noise['ceiling_hu']:.1f} HU")
    if physics.get("water_diameter_cm") is not None:
        parts.append(f"Dw {physics['water_diameter_cm']:.0f} cm")
    if physics.get("ssde_mgy") is not None:
        parts.append(f"SSDE {physics['ssde_mgy']:.1f} mGy")
    return "".join(f", {p}" for p in parts)


class ConsoleSink:
    name = "console"

    def __init__(self, console: Console | None = None):
        self.console = console or Console()

    def deliver(self, event_id: int, payload: dict) -> None:
        alert, line = one_line(payload)
        style = "bold white on red" if alert else "green"
        # When the verdict was reached (the judged time in the stored document; a delivery retried after a
        # restart keeps it), local time as a technologist's clock reads it.
        judged = payload.get("judged_utc")
        try:
            when = datetime.fromisoformat(judged).astimezone() if judged else datetime.now().astimezone()
        except ValueError:
            when = datetime.now().astimezone()
        self.console.print(f"[dim]{when:%Y-%m-%d %H:%M:%S}[/] [{style}]{markup_safe(line)}[/]", highlight=False,
                           soft_wrap=True)


class JsonlSink:
    """Appends one JSON object per result; an event already in the file is not written again."""

    name = "jsonl"

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._written: set[int] = set()
        self._lock = threading.Lock()
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                try:
                    self._written.add(int(json.loads(line)["event_id"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash: its event is written again whole

    def deliver(self, event_id: int, payload: dict) -> None:
        with self._lock:
            if event_id in self._written:
                return
            with open(self.path, "a") as f:
                f.write(json.dumps({"event_id": event_id, **payload}, separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._written.add(event_id)


def _cut(connection: http.client.HTTPConnection, fired: threading.Event) -> None:
    """The attempt's deadline: shut its socket, so a read blocked on a dribbling peer returns at once."""
    fired.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class WebhookSink:
    """POSTs the result as JSON; any answer but 2xx, or no answer within ``timeout`` s, is a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must start with http:// or https://, not {url!r}")
        self.url, self.timeout = url, timeout
        self.database = ""  # the results database's UUID (`Database.uuid`): event ids restart in a new database

    def deliver(self, event_id: int, payload: dict) -> None:
        """One attempt, bounded by ``timeout`` seconds in all (connecting, sending, and every byte of the
        answer): a receiver that dribbles its answer a byte at a time is cut off at the deadline. A redirect
        is not followed (it would be a GET without the result): it is a failure like any answer but 2xx."""
        body = json.dumps({"event_id": event_id, **payload}).encode()
        key = f"tfkt-edge-{self.database}-{event_id}" if self.database else f"tfkt-edge-{event_id}"
        parts = urllib.parse.urlsplit(self.url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname or "", parts.port, timeout=self.timeout)
        fired = threading.Event()
        deadline = threading.Timer(self.timeout, _cut, (connection, fired))
        deadline.daemon = True
        deadline.start()
        try:
            connection.request("POST", urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")), body=body,
                               headers={"Content-Type": "application/json", "Idempotency-Key": key})
            response = connection.getresponse()
            response.read()
            status, reason, location = response.status, response.reason, response.getheader("Location")
        except (OSError, http.client.HTTPException) as exc:
            late = f" (the answer did not complete within the {self.timeout:g} s deadline)" if fired.is_set() else ""
            raise RuntimeError(f"{exc or type(exc).__name__}{late}") from None
        finally:
            deadline.cancel()
            connection.close()
        if 300 <= status < 400:
            raise RuntimeError(f"HTTP {status} ({reason}: redirected to {location}: not followed)")
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}")
