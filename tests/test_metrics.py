"""`serve --metrics-port`: Prometheus metrics and /healthz from a real node process, read over real HTTP."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request

from .node import CLINICAL, DEGRADED, make_series, send


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name} not in\n{text}"
    return float(match.group(1))


def test_metrics_and_health_of_a_running_node(server, tmp_path):
    srv = server("--metrics-port", "0")
    found = re.search(r"metrics http://127\.0\.0\.1:(\d+)/metrics", srv.output())
    assert found, srv.output()
    base = f"http://127.0.0.1:{found.group(1)}"
    code, body = _get(f"{base}/healthz")
    assert code == 200 and json.loads(body)["status"] == "ok"
    assert send(srv.port, make_series(DEGRADED, tmp_path / "bad", 3)) == [0, 0, 0]
    assert send(srv.port, make_series(CLINICAL, tmp_path / "good", 2)) == [0, 0]
    srv.wait_events(2)
    code, text = _get(f"{base}/metrics")
    assert code == 200
    assert _value(text, "tfkt_edge_instances_received_total") == 5
    assert _value(text, "tfkt_edge_slices_scored_total") == 5
    assert _value(text, 'tfkt_edge_verdicts_total{status="alert"}') == 1
    assert _value(text, 'tfkt_edge_verdicts_total{status="pass"}') == 1
    assert _value(text, "tfkt_edge_verdict_seconds_count") == 2
    assert _value(text, "tfkt_edge_instances_pending") == 0
    # The store taken away under the running node: health says so, with the reason, as C-ECHO does.
    shutil.rmtree(tmp_path / "store")
    deadline = time.monotonic() + 10
    while (answer := _get(f"{base}/healthz"))[0] != 503:
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    assert "store" in json.loads(answer[1])["checks"]["store"]
    assert _get(f"{base}/nothing")[0] == 404
