"""Prometheus metrics and a health endpoint for `serve` and `watch` (``--metrics-port``).

``GET /metrics``: the Prometheus text format (prometheus-client), read from the results database at
each scrape, so the figures are those of the file and survive a restart: instances received, pending
and skipped, slices scored, open series, results by status, deliveries pending, parked (dead letters)
and failed attempts per sink, and a histogram of the seconds from a series' last instance to its verdict.

``GET /healthz``: 200 with ``{"status": "ok", ...}`` while the node can do its work: the database is the
file it opened and takes writes, the store is writable (``serve``), the model is loaded; else 503 with
the reasons. The same checks decide C-ECHO's answer (`scp.handle_echo`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from tfkt_edge.service.database import Database
from tfkt_edge.service.store import InstanceStore

log = logging.getLogger("tfkt_edge.service")
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class DatabaseCollector(Collector):
    """The node's figures, read from its database at each scrape."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterator:
        g = self.db.gauges(LATENCY_BUCKETS)
        yield CounterMetricFamily("tfkt_edge_instances_received", "Instances stored and recorded", value=g["instances_received"])
        yield CounterMetricFamily("tfkt_edge_instances_skipped", "Instances recorded but not scorable (with a reason)",
                                  value=g["instances_skipped"])
        yield GaugeMetricFamily("tfkt_edge_instances_pending", "Instances waiting to be scored (the scoring queue)",
                                value=g["instances_pending"])
        yield CounterMetricFamily("tfkt_edge_slices_scored", "Slices scored", value=g["slices_scored"])
        yield GaugeMetricFamily("tfkt_edge_series_open", "Series receiving or waiting for their verdict", value=g["series_open"])
        verdicts = CounterMetricFamily("tfkt_edge_verdicts", "Series verdicts (revisions included) by status", labels=["status"])
        for status, count in sorted(g["results"].items()):
            verdicts.add_metric([status], count)
        yield verdicts
        pending = GaugeMetricFamily("tfkt_edge_deliveries_pending", "Results not yet delivered, by sink", labels=["sink"])
        parked = GaugeMetricFamily("tfkt_edge_deliveries_parked", "Deliveries given up after too many failures", labels=["sink"])
        failed = CounterMetricFamily("tfkt_edge_delivery_failures", "Failed delivery attempts, by sink", labels=["sink"])
        for sink, figures in sorted(g["deliveries"].items()):
            pending.add_metric([sink], figures["pending"])
            parked.add_metric([sink], figures["parked"])
            failed.add_metric([sink], figures["failed_attempts"])
        yield from (pending, parked, failed)
        latency = g["verdict_seconds"]
        buckets = [(str(b), latency["within"][b]) for b in LATENCY_BUCKETS] + [("+Inf", latency["count"])]
        yield HistogramMetricFamily("tfkt_edge_verdict_seconds", "Seconds from a series' last instance to its verdict",
                                    buckets=buckets, sum_value=latency["sum"])


def health(db: Database, store: InstanceStore | None, model_loaded: Callable[[], bool]) -> dict:
    """{"status": "ok" or "failing", "checks": {name: "ok" or the reason}}."""
    checks = {"database": db.unusable() or "ok",
              "store": (store.unwritable() or "ok") if store is not None else "ok (no store: watching a folder)",
              "model": "ok" if model_loaded() else "not loaded"}
    failing = any(not value.startswith("ok") for value in checks.values())
    return {"status": "failing" if failing else "ok", "checks": checks}


class MetricsServer:
    """An HTTP listener in a thread of its own: /metrics and /healthz."""

    def __init__(self, host: str, port: int, db: Database, store: InstanceStore | None, model_loaded: Callable[[], bool]):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(db))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, code, kind = generate_latest(registry), 200, CONTENT_TYPE_LATEST
                elif path == "/healthz":
                    report = health(db, store, model_loaded)
                    body, code, kind = json.dumps(report).encode(), 200 if report["status"] == "ok" else 503, "application/json"
                else:
                    body, code, kind = b"not found: /metrics or /healthz\n", 404, "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # scrapes every few seconds: not worth a log line
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="tfkt-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
