"""Deliveries have bounds: an attempt ends at its deadline however slowly the receiver answers, and a result
that fails too often is parked (a dead letter `results` shows) instead of retried for ever."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service import worker as worker_module
from tfkt_edge.service.database import Database
from tfkt_edge.service.sinks import WebhookSink


@pytest.fixture
def dribbler():
    """A real TCP listener that reads the request, then answers one byte every 0.4 s, for ever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
                if stop.wait(0.4):
                    return
                try:
                    connection.send(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(timeout=5)


def test_a_webhook_that_dribbles_its_answer_is_cut_off_at_the_deadline(dribbler):
    sink = WebhookSink(f"http://127.0.0.1:{dribbler}/alerts", timeout=1.5)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not complete within the 1.5 s deadline"):
        sink.deliver(1, {"series": []})
    assert time.monotonic() - started < 4.0  # before: blocked for as long as the receiver dribbled


class _Refusing:
    name = "webhook"

    def deliver(self, event_id, payload):
        raise RuntimeError("HTTP 500")


def test_a_delivery_that_keeps_failing_is_parked_and_listed(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tfkt_edge.cli.main import app
    from tfkt_edge.dicom.slices import read_slices

    monkeypatch.setattr(worker_module, "MAX_ATTEMPTS", 3)
    db = Database(tmp_path / "results.sqlite")
    try:
        (ref,) = read_slices(EXAMPLES / "clinical" / "abdomen.dcm")
        db.record_instance(ref.sop_instance_uid, ref.series_instance_uid, ref.study_instance_uid, ref.path, "SCU")
        event = db.complete_series(ref.series_instance_uid, True, {"series": []}, ["webhook"])
        delivery = worker_module.DeliveryWorker(db, _Refusing())
        for _ in range(3):  # each step tries what is due; the retry times are made due at once
            delivery.step()
            with db._transaction() as conn:
                conn.execute("UPDATE deliveries SET next_attempt = 0")
        assert db.pending_deliveries("webhook", time.time() + 3600) == []  # never tried again
        assert db.undelivered() == {event: ["webhook after 3 attempts: HTTP 500"]}
    finally:
        db.close()
    listed = CliRunner().invoke(app, ["results", "--db", str(tmp_path / "results.sqlite")])
    assert listed.exit_code == 0 and "not delivered" in listed.stdout and "HTTP 500" in listed.stdout
