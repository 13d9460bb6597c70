"""One running service: store, database, receiver, scoring and delivery, started and stopped together."""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tfkt_edge.backends import BackendOptions, create_backend
from tfkt_edge.pipeline.decode import decoder_pool
from tfkt_edge.service.database import Database
from tfkt_edge.service.metrics import MetricsServer
from tfkt_edge.service.report_sr import DicomSrSink
from tfkt_edge.service.scp import ScpConfig, StorageServer
from tfkt_edge.service.sinks import ConsoleSink, JsonlSink, Sink, WebhookSink
from tfkt_edge.service.store import InstanceStore
from tfkt_edge.service.watch import FolderWatcher
from tfkt_edge.service.worker import DeliveryWorker, ScoringWorker
from tfkt_edge.verdict.policy import AlertPolicy

log = logging.getLogger("tfkt_edge.service")


@dataclass
class ServiceConfig:
    store: Path = Path("tfkt-store")
    db: Path = Path("tfkt-results.sqlite")
    events: Path | None = None  # JSON-lines log; default: <db>.events.jsonl
    series_timeout: float = 2.0
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    webhook: str | None = None
    sr_destination: str | None = None  # AE@host:port
    calling_ae: str = "TFKT"
    backend: str = "onnxruntime"
    model: Path | None = None
    batch_size: int = 16
    workers: int = 2
    decoders: str = "threads"
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    metrics_port: int | None = None  # /metrics and /healthz on this port (None: off)
    metrics_host: str = "127.0.0.1"

    @property
    def events_path(self) -> Path:
        return self.events or self.db.with_name(self.db.name + ".events.jsonl")


def _check_port(host: str, port: int) -> None:
    """Raise OSError now if the port cannot be bound (in use, not permitted), before any file is made."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class Service:
    """Everything behind ``tfkt-edge serve`` (``scp``) and ``tfkt-edge watch`` (``watch``: the folder)."""

    def __init__(self, config: ServiceConfig, scp: ScpConfig | None = None, watch: Path | None = None,
                 console_sink: Sink | None = None, settle: float = 1.0):
        self.config = config
        # Everything that can fail on the user's options is checked before anything is written to disk:
        # a failed start leaves no database, store or event log behind.
        self.backend = create_backend(config.backend, config.model, config.backend_options)
        extra: list[Sink] = []
        if config.webhook:
            extra.append(WebhookSink(config.webhook))
        if config.sr_destination:
            extra.append(DicomSrSink(config.sr_destination, config.calling_ae))
        ssl_context = None
        if scp is not None:
            ssl_context = scp.ssl_context()
            _check_port(scp.host, scp.port)
        if config.metrics_port is not None:
            _check_port(config.metrics_host, config.metrics_port)
        self.db = Database(config.db)
        for sink in extra:
            if isinstance(sink, WebhookSink):
                sink.database = self.db.uuid
        sinks: list[Sink] = [console_sink or ConsoleSink(), JsonlSink(config.events_path), *extra]
        self.sinks = sinks
        self.wake = threading.Event()
        self.pool = decoder_pool(config.workers, config.decoders)
        make_pool = (lambda: decoder_pool(config.workers, config.decoders)) if isinstance(self.pool, ProcessPoolExecutor) else None
        self.deliveries = [DeliveryWorker(self.db, sink) for sink in sinks]
        self.scoring = ScoringWorker(self.db, self.backend, config.policy, config.series_timeout,
                                     [s.name for s in sinks], self.pool, config.batch_size, self.wake,
                                     on_result=self._wake_deliveries, make_pool=make_pool)
        self.server = None
        if scp is not None:
            self.server = StorageServer(scp, InstanceStore(config.store), self.db, self.received, ssl_context)
        self.watcher = FolderWatcher(watch, self.db, self.received, settle) if watch is not None else None
        self.metrics = None
        if config.metrics_port is not None:
            self.metrics = MetricsServer(config.metrics_host, config.metrics_port, self.db,
                                         self.server.store if self.server is not None else None,
                                         lambda: self.backend is not None)

    def _wake_deliveries(self) -> None:
        for delivery in self.deliveries:
            delivery.wake.set()

    def received(self, series_uid: str) -> None:
        self.wake.set()

    def start(self) -> None:
        """Resume unfinished work from the database, then listen."""
        self.scoring.start()
        for delivery in self.deliveries:
            delivery.start()
        if self.server is not None:
            self.server.start()
        if self.watcher is not None:
            self.watcher.start()
        if self.metrics is not None:
            self.metrics.start()

    def stop(self) -> None:
        """Stop listening first, then let scoring and delivery finish their current step."""
        if self.metrics is not None:
            self.metrics.stop()
        if self.server is not None:
            self.server.stop()
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.join(timeout=30)
        self.scoring.stop()
        for delivery in self.deliveries:
            delivery.stop()
        self.scoring.join(timeout=30)
        for delivery in self.deliveries:
            delivery.join(timeout=30)
        self.scoring.pool.shutdown()  # the scoring worker's: it renews a pool whose process died
        self.backend.close()
        self.db.close()
