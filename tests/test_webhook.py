"""The webhook sink against a real HTTP listener: a redirect is a failure to retry, never a delivery."""

from __future__ import annotations

import http.server
import threading

import pytest

from tfkt_edge.service.sinks import WebhookSink


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []  # noqa: RUF012 (shared by the handler instances on purpose)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()
            return
        Receiver.received.append(body)
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST  # a followed redirect would arrive as a GET

    def log_message(self, *args):
        pass


@pytest.fixture
def listener():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_redirect_is_not_counted_as_delivered(listener):
    with pytest.raises(RuntimeError, match="HTTP 302.*redirected to .*/elsewhere: not followed"):
        WebhookSink(f"{listener}/moved").deliver(1, {"series": []})
    assert Receiver.received == []  # nothing reached /elsewhere either
    WebhookSink(f"{listener}/results").deliver(2, {"series": []})
    assert len(Receiver.received) == 1 and b'"event_id": 2' in Receiver.received[0]
