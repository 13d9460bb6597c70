"""The README's exit-code table on real processes: a closed pipe, Ctrl-C, a damaged database, an empty path."""

from __future__ import annotations

import signal
import subprocess
import sys

from tfkt_edge.cli import exit_codes
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service.database import Database

from .node import free_port

CLI = [sys.executable, "-m", "tfkt_edge"]


def test_a_table_whose_reader_went_away_exits_141(realct):
    """The reader of standard output is gone before anything is written (as after `| head` has read its fill):
    a pipe whose read end is closed, so every write fails, whatever the timing."""
    import os

    for extra in ([], ["--format", "json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            done = subprocess.run([*CLI, "score", str(realct / "totalsegmentator"), str(EXAMPLES), "-q", *extra],
                                  stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
        finally:
            os.close(write_end)
        assert done.returncode == exit_codes.PIPE_CLOSED, (extra, done.stderr)
        assert "Traceback" not in done.stderr


def test_serve_exits_130_after_ctrl_c_and_0_after_sigterm(tmp_path):
    for sig, code in ((signal.SIGINT, exit_codes.INTERRUPTED), (signal.SIGTERM, exit_codes.PASS)):
        process = subprocess.Popen([*CLI, "serve", "--port", str(free_port()), "--store", str(tmp_path / "store"),
                                    "--db", str(tmp_path / f"{sig.name}.sqlite")], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()  # the banner: the node is up
        process.send_signal(sig)
        assert process.wait(timeout=60) == code


def test_a_truncated_results_database_is_one_error_line_for_every_command(tmp_path):
    db = tmp_path / "results.sqlite"
    database = Database(db)
    database.close()
    db.write_bytes(db.read_bytes()[: 3 * 4096 + 100])  # a real tfkt-edge database, cut short
    for args in (["results", "--db", str(db)], ["calibrate", "--db", str(db), "-o", str(tmp_path / "b.json")],
                 ["serve", "--port", str(free_port()), "--store", str(tmp_path / "s"), "--db", str(db)],
                 ["watch", str(tmp_path), "--db", str(db)]):
        done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == exit_codes.USAGE, (args, done.stderr)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def test_calibrate_on_a_path_without_ct_writes_nothing(tmp_path):
    out = tmp_path / "b.json"
    done = subprocess.run([*CLI, "calibrate", str(tmp_path / "missing"), "-o", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == exit_codes.USAGE and "no CT series found" in done.stderr and not out.exists()
