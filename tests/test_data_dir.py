"""One data directory: `serve` and `results` find the same database whatever folder they are run from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .node import DEGRADED, Server, make_series, send


def test_serve_and_results_default_to_one_data_directory(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "TFKT_EDGE_HOME": str(home)}
    missing = subprocess.run([sys.executable, "-m", "tfkt_edge", "results"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and f"no results database at {home / 'tfkt-results.sqlite'}" in missing.stderr
    node = Server(tmp_path)
    node.args = [a for a in node.args if a not in ("--store", "--db", str(tmp_path / "store"), str(tmp_path / "results.sqlite"))]
    os.environ["TFKT_EDGE_HOME"] = str(home)  # the server process inherits it
    try:
        node.start()
        assert f"store {home / 'store'}, database {home / 'tfkt-results.sqlite'}" in node.output()
        assert send(node.port, make_series(DEGRADED, tmp_path / "s", 2)) == [0, 0]
        log = home / "tfkt-results.sqlite.events.jsonl"  # the event log sits beside the default database
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().strip()):
            assert time.monotonic() < deadline, node.output()
            time.sleep(0.1)
        listed = json.loads(subprocess.run([sys.executable, "-m", "tfkt_edge", "results", "--format", "json"], cwd=elsewhere,
                                           env=env, capture_output=True, text=True, timeout=60).stdout)
        assert len(listed) == 1 and listed[0]["alert"] is True
    finally:
        node.stop()
        del os.environ["TFKT_EDGE_HOME"]
    assert (home / "store").is_dir() and not (tmp_path / "results.sqlite").exists()
