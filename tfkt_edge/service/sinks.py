"""Where series results go: the console, a JSON-lines event log, an HTTP webhook.

A sink's ``deliver`` raises on failure; the delivery worker then retries it
later with backoff (the outbox lives in the database, so retries survive a
restart). Each event carries its database id, so a receiver can drop a
repeat: the JSON-lines log does so itself, the webhook sends the id as an
``Idempotency-Key`` header.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Protocol

from rich.console import Console

from tfkt_edge.policy import STATUS_TEXT
from tfkt_edge.report import series_name
from tfkt_edge.shown import markup_safe


class Sink(Protocol):
    name: str

    def deliver(self, event_id: int, payload: dict) -> None:
        """Hand one series result on; raise to be retried later."""


def one_line(payload: dict) -> tuple[bool, str]:
    """(alert, a one-line verdict) for a result payload."""
    series = payload["series"][0] if payload.get("series") else {}
    uid = payload.get("series_instance_uid") or series.get("series_instance_uid", "?")
    description = series_name(series.get("description", ""), str(uid))
    if not series:
        return False, f"series {uid}: nothing scorable ({len(payload.get('skipped', []))} instance(s) skipped)"
    verdict = STATUS_TEXT.get(series.get("status", ""), "RESCAN ALERT" if series["alert"] else "pass")
    if payload.get("revision"):  # more instances arrived after the series was judged: this verdict replaces it
        verdict = f"{verdict} (revised, #{payload['revision']})"
    study = series.get("study") or {}
    who = ", ".join(f"{label} {study[key]}" for key, label in (("patient_id", "patient"), ("accession_number", "accession"),
                                                                ("station", "station")) if study.get(key))
    median = "-" if series.get("median_score") is None else f"{series['median_score']:.2f}"
    return bool(series["alert"]), (f"{verdict}: {description}{f' [{who}]' if who else ''} ({series['n_slices']} slices, "
                                   f"median {median}{_physics(series)}) {series['reason']} [{uid}]")


def _physics(series: dict) -> str:
    """", noise 16.1/37.5 HU, Dw 31 cm, SSDE 14.3 mGy": what physics says, beside the score."""
    noise, physics = series.get("noise") or {}, series.get("physics") or {}
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


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would be followed as a GET without the result: treat it as the failure it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirected to {newurl}: not followed", headers, fp)


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


class WebhookSink:
    """POSTs the result as JSON; any answer but 2xx, or no answer within ``timeout`` s, is a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must start with http:// or https://, not {url!r}")
        self.url, self.timeout = url, timeout
        self.database = ""  # the results database's UUID (`Database.uuid`): event ids restart in a new database

    def deliver(self, event_id: int, payload: dict) -> None:
        body = json.dumps({"event_id": event_id, **payload}).encode()
        key = f"tfkt-edge-{self.database}-{event_id}" if self.database else f"tfkt-edge-{event_id}"
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": key})
        try:
            with _NO_REDIRECTS.open(request, timeout=self.timeout) as response:
                if not 200 <= response.status < 300:
                    raise RuntimeError(f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code}" + (f" ({exc.msg})" if 300 <= exc.code < 400 else "")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"{getattr(exc, 'reason', exc)}") from None
