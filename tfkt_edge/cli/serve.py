"""`tfkt-edge serve` (a DICOM node), `tfkt-edge watch` (a folder feed) and `tfkt-edge results` (what they have judged)."""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from tfkt_edge.cli import exit_codes
from tfkt_edge.cli.config_file import load_config
from tfkt_edge.cli.console import StdoutConsole
from tfkt_edge.cli.options import (
    BackendOpt,
    BaselinesOpt,
    BatchOpt,
    Decoders,
    DecodersOpt,
    MinRunOpt,
    ModelOpt,
    NoiseCheckOpt,
    ThresholdOpt,
    TritonModelOpt,
    UrlOpt,
    WorkersOpt,
)
from tfkt_edge.cli.scoring_options import ScoringOptions
from tfkt_edge.errors import InputError
from tfkt_edge.render.document import STATUS_STYLE, series_name
from tfkt_edge.render.shown import markup_safe
from tfkt_edge.service.paths import default_db, default_store
from tfkt_edge.verdict.policy import STATUS_TEXT
from tfkt_edge.verdict.record import RunRecord

StoreOpt = Annotated[Optional[Path], typer.Option("--store", help="Folder for received instances (named by UIDs). Default: store/ in the data directory ($TFKT_EDGE_HOME, else the per-user data directory).", show_default=False)]
DbOpt = Annotated[Optional[Path], typer.Option("--db", help="SQLite file of instances, scores and results. Default: tfkt-results.sqlite in the data directory ($TFKT_EDGE_HOME, else the per-user data directory).", show_default=False)]
TimeoutOpt = Annotated[float, typer.Option("--series-timeout", min=0.1, help="A series is complete when no instance has arrived for this many seconds.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", is_eager=True, callback=load_config, help="TOML file of settings (long option names, under [serve] or [watch] or at the top level); flags and TFKT_EDGE_<COMMAND>_<OPTION> environment variables take precedence.", show_default=False)]
MetricsOpt = Annotated[Optional[int], typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus metrics at /metrics and a health check at /healthz on this port (0: any free port; default: off).", show_default=False)]
WebhookOpt = Annotated[Optional[str], typer.Option("--webhook", help="POST each series result as JSON to this URL (retried with backoff).")]
SrOpt = Annotated[Optional[str], typer.Option("--sr-destination", help="Also send each result as a DICOM Basic Text SR to ARCHIVE@host:port (retried with backoff).")]
EventsOpt = Annotated[Optional[Path], typer.Option("--events", help="JSON-lines log of results (default: DB.events.jsonl).")]


def _on_signals() -> tuple[threading.Event, list[int]]:
    """Handle SIGINT and SIGTERM from now on: the event is set and the signal recorded."""
    stop, received = threading.Event(), []

    def handle(number: int, _frame) -> None:
        received.append(number)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    return stop, received


def _run(make_service, banner: str, starting: str) -> None:
    """Build and start the service, print the banner, run until SIGINT/SIGTERM, stop cleanly."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    try:
        service = make_service()
    except ValueError as exc:  # a malformed option value met while building (TfktEdgeError and OSError reach the boundary)
        raise InputError(str(exc)) from None
    try:
        service.start()
    except OSError as exc:
        service.stop()
        raise InputError(f"{starting}: {exc.strerror or exc}") from None
    stop, received = _on_signals()  # before the banner: a stop sent once the node says it is up is handled
    metrics = getattr(service, "metrics", None)
    if metrics is not None:
        banner += f"; metrics http://{service.config.metrics_host}:{metrics.port}/metrics, health /healthz"
    StdoutConsole().print(banner, highlight=False, soft_wrap=True)
    try:
        stop.wait()
    finally:
        service.stop()
    if received and received[0] == signal.SIGINT:
        raise typer.Exit(exit_codes.INTERRUPTED)


def _config(store: Path, db: Path, events: Path | None, series_timeout: float, scoring: ScoringOptions,
            webhook: str | None, sr_destination: str | None, calling_ae: str, metrics_port: int | None = None,
            metrics_host: str = "127.0.0.1"):
    from tfkt_edge.backends.base import DEFAULT_BATCH
    from tfkt_edge.service.runner import ServiceConfig

    return ServiceConfig(store=store, db=db, events=events, series_timeout=series_timeout, metrics_port=metrics_port,
                         metrics_host=metrics_host, policy=scoring.policy(), webhook=webhook,
                         sr_destination=sr_destination, calling_ae=calling_ae, backend=scoring.backend, model=scoring.model,
                         batch_size=DEFAULT_BATCH if scoring.batch_size is None else scoring.batch_size, workers=scoring.workers, backend_options=scoring.backend_options(),
                         decoders=scoring.decoders)


def serve(
    ae_title: Annotated[str, typer.Option("--ae-title", help="This node's AE title.")] = "TFKT",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")] = 11112,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    allowed_callers: Annotated[Optional[str], typer.Option("--allowed-callers", help="Comma-separated calling AE titles to accept (default: any).")] = None,
    store: StoreOpt = None,
    db: DbOpt = None,
    series_timeout: TimeoutOpt = 2.0,
    threshold: ThresholdOpt = 2.0,
    min_run: MinRunOpt = 3,
    webhook: WebhookOpt = None,
    sr_destination: SrOpt = None,
    events: EventsOpt = None,
    backend: BackendOpt = "onnxruntime",
    url: UrlOpt = None,
    triton_model: TritonModelOpt = None,
    model: ModelOpt = None,
    batch_size: BatchOpt = 16,
    workers: WorkersOpt = 2,
    decoders: DecodersOpt = Decoders.threads,
    baselines: BaselinesOpt = None,
    noise_check: NoiseCheckOpt = True,
    tls_cert: Annotated[Optional[Path], typer.Option("--tls-cert", help="PEM certificate of this node: associations must use TLS.")] = None,
    tls_key: Annotated[Optional[Path], typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    tls_ca: Annotated[Optional[Path], typer.Option("--tls-ca", help="PEM CA bundle: callers must present a client certificate it signed.")] = None,
    metrics_port: MetricsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run a DICOM node (C-ECHO, C-STORE of CT and Enhanced CT) that scores slices as they arrive and
    prints a verdict per series once no instance has arrived for --series-timeout seconds. Stop with Ctrl-C.

    Example: tfkt-edge serve --ae-title TFKT --port 11112 --host 0.0.0.0 --allowed-callers CT1,CT2
    """
    from tfkt_edge.service.runner import Service
    from tfkt_edge.service.scp import ScpConfig

    if len(ae_title.strip()) == 0 or len(ae_title) > 16:
        raise InputError(f"--ae-title must be 1-16 characters, not {ae_title!r}")
    callers = [c.strip() for c in (allowed_callers or "").split(",") if c.strip()]
    store, db = store or default_store(), db or default_db()
    scoring = ScoringOptions(model, backend, url, triton_model, batch_size, workers, decoders.value, threshold, min_run,
                             baselines, noise_check)
    service_config = _config(store, db, events, series_timeout, scoring, webhook, sr_destination, ae_title, metrics_port, host)
    scp = ScpConfig(ae_title, host, port, callers, tls_cert, tls_key, tls_ca)
    secure = (" over TLS, client certificates required" if tls_ca else " over TLS") if tls_cert else ""
    _run(lambda: Service(service_config, scp=scp),
         f"tfkt-edge: listening as {ae_title} on {host}:{port}{secure}; store {store}, database {db}, "
         f"series complete after {series_timeout:g} s", f"cannot listen on {host}:{port}")


def watch(
    folder: Annotated[Path, typer.Argument(help="Folder the scanner exports to (watched recursively; files are never moved or changed).", show_default=False)],
    settle: Annotated[float, typer.Option("--settle", min=0.0, help="Seconds a file's size and time must stay unchanged before it is read.")] = 1.0,
    db: DbOpt = None,
    series_timeout: TimeoutOpt = 2.0,
    threshold: ThresholdOpt = 2.0,
    min_run: MinRunOpt = 3,
    webhook: WebhookOpt = None,
    sr_destination: SrOpt = None,
    events: EventsOpt = None,
    backend: BackendOpt = "onnxruntime",
    url: UrlOpt = None,
    triton_model: TritonModelOpt = None,
    model: ModelOpt = None,
    batch_size: BatchOpt = 16,
    workers: WorkersOpt = 2,
    decoders: DecodersOpt = Decoders.threads,
    baselines: BaselinesOpt = None,
    noise_check: NoiseCheckOpt = True,
    metrics_port: MetricsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score CT files as they appear in a folder, with the same pipeline and verdicts as `serve`. Stop with Ctrl-C.

    Example: tfkt-edge watch /mnt/scanner-export --settle 2
    """
    from tfkt_edge.service.runner import Service

    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    db = db or default_db()
    scoring = ScoringOptions(model, backend, url, triton_model, batch_size, workers, decoders.value, threshold, min_run,
                             baselines, noise_check)
    # No store is written: watched files are scored where they are.
    service_config = _config(default_store(), db, events, series_timeout, scoring, webhook, sr_destination, "TFKT", metrics_port)
    _run(lambda: Service(service_config, watch=folder.resolve(), settle=settle),
         f"tfkt-edge: watching {folder} (settle {settle:g} s); database {db}, series complete after {series_timeout:g} s",
         f"cannot watch {folder}")


def results(
    db: DbOpt = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only results from this time on: ISO date/time (UTC if no zone) or a number of hours ago, like 24h.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    status: Annotated[Optional[list[str]], typer.Option("--status", help="Only results with this status: pass, alert, outside-domain or nothing-scorable (repeat for several).", show_default=False)] = None,
    all_revisions: Annotated[bool, typer.Option("--all-revisions", help="Also list the revisions a later verdict on the same series superseded.")] = False,
) -> None:
    """List the series results recorded by `tfkt-edge serve` / `watch`, oldest first: each series' current
    verdict, with its patient and study (superseded revisions with --all-revisions).

    Example: tfkt-edge results --since 24h --status alert
    """
    from tfkt_edge.service.database import Database

    if format not in ("table", "json", "csv"):
        raise InputError(f"--format must be table, json or csv, not {format!r}")
    db = db or default_db()
    wanted = set(status or ())
    if wanted - set(STATUSES):
        raise InputError(f"--status must be one of {', '.join(STATUSES)}, not {', '.join(sorted(wanted - set(STATUSES)))}")
    if not db.is_file():
        raise InputError(f"no results database at {db}")
    try:
        cutoff = parse_since(since)
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from None
    try:
        database = Database(db)
    except sqlite3.Error as exc:
        raise InputError(str(exc)) from None
    try:
        parked = database.undelivered()
        rows = [{**summary(e), "undelivered": "; ".join(parked.get(e["event_id"], []))} for e in database.events(cutoff)]
    finally:
        database.close()
    superseded = 0 if all_revisions else len(rows) - len(current := current_revisions(rows))
    if not all_revisions:
        rows = current
    if wanted:
        rows = [r for r in rows if r["status"] in wanted]
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(SUMMARY_FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(out.getvalue(), nl=False)
    else:
        table = Table(title=f"tfkt-edge results in {db} ({len(rows)})")
        for name in ("completed (UTC)", "verdict", "patient", "study", "series", "slices", "median", "reason"):
            table.add_column(name)
        for r in rows:
            kind = r["status"]  # pass, alert, outside-domain, or nothing-scorable (its own words, in yellow)
            verdict = f"[{STATUS_STYLE.get(kind, 'yellow')}]{STATUS_TEXT.get(kind, kind.replace('-', ' '))}[/]"
            revision = f" (revision {r['revision']})" if r["revision"] else ""
            patient = " ".join(p for p in (r["patient_name"], f"[{r['patient_id']}]" if r["patient_id"] else "") if p)
            study = " ".join(p for p in (r["study_date"], r["accession_number"]) if p)
            table.add_row(r["completed_utc"], verdict, markup_safe(patient or "-"), markup_safe(study or "-"),
                          markup_safe(series_name(r["description"], r["series_instance_uid"]) + revision),
                          str(r["n_slices"]), "" if r["median_score"] is None else f"{r['median_score']:.2f}",
                          markup_safe(r["reason"]))
        console = StdoutConsole()
        console.print(table)
        if superseded:
            console.print(f"{superseded} superseded revision(s) not listed (--all-revisions lists them)", highlight=False)
        for r in rows:
            if r["undelivered"]:
                console.print(f"[red]result {r['event_id']} not delivered[/]: {markup_safe(r['undelivered'])}", highlight=False)


SUMMARY_FIELDS = ("event_id", "completed_utc", "series_instance_uid", "revision", "description", "patient_name",
                  "patient_id", "study_date", "accession_number", "alert", "status", "n_slices", "median_score",
                  "min_score", "reason", "skipped", "undelivered")
STATUSES = ("pass", "alert", "outside-domain", "nothing-scorable")


def current_revisions(rows: list[dict]) -> list[dict]:
    """Each series' latest revision only, in the order of the rows."""
    latest: dict[str, int] = {}
    for r in rows:
        latest[r["series_instance_uid"]] = max(latest.get(r["series_instance_uid"], -1), r["revision"])
    return [r for r in rows if r["revision"] == latest[r["series_instance_uid"]]]


def summary(event: dict) -> dict:
    """One row of `results` from a stored verdict (`verdict.record.RunRecord`)."""
    record = RunRecord.from_dict(event)
    series, service = record.first, record.service
    study = series.study if series is not None else None
    return {"event_id": service["event_id"],
            "completed_utc": datetime.fromtimestamp(service["created_at"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "series_instance_uid": service.get("series_instance_uid") or (series.series_instance_uid if series else ""),
            "revision": service.get("revision", 0),
            "description": series.description if series else "", "patient_name": study.patient_name if study else "",
            "patient_id": study.patient_id if study else "", "study_date": study.study_date if study else "",
            "accession_number": study.accession_number if study else "", "alert": bool(series and series.alert),
            "status": series.status if series else "nothing-scorable",
            "n_slices": series.n_slices if series else 0, "median_score": series.median_score if series else None,
            "min_score": series.min_score if series else None, "reason": series.reason if series else "nothing scorable",
            "skipped": len(record.skipped)}


def parse_since(text: str | None) -> float:
    """Seconds since the epoch from '24h', '30m', '2026-11-24' or '2026-11-24T10:00[+01:00]'; 0 for None."""
    if not text:
        return 0.0
    text = text.strip()
    units = {"h": 3600, "m": 60, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return datetime.now(timezone.utc).timestamp() - float(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a time like 2026-11-24T10:00 nor a span like 24h") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
