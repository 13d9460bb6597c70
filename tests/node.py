"""A real `tfkt-edge serve` process on a loopback port and the DICOM peer that drives it, shared by the service tests."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, EnhancedCTImageStorage, Verification

from tfkt_edge.bench.benchmark import write_series
from tfkt_edge.examples import EXAMPLES

CLINICAL = EXAMPLES / "clinical" / "abdomen.dcm"
DEGRADED = EXAMPLES / "degraded" / "abdomen_degraded.dcm"


@functools.cache
def dcmtk(tool: str) -> str | None:
    """The dcmtk program ``tool`` on PATH, passing over same-named others (pynetdicom installs a python storescu)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which(tool, path=folder)
        if found:
            out = subprocess.run([found, "--version"], capture_output=True, text=True)
            if "dcmtk" in out.stdout + out.stderr:
                return found
    return None


needs_dcmtk = pytest.mark.skipif(dcmtk("storescu") is None or dcmtk("echoscu") is None,
                                 reason="needs dcmtk's storescu and echoscu (apt-get install dcmtk)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_series(source: Path, folder: Path, n: int) -> list[Path]:
    """n uncompressed copies of a real slice as one new series, positions 0..n-1 mm."""
    return write_series(folder, n, source)


class Server:
    """`python -m tfkt_edge serve` in a subprocess, with its store, database and event log in ``root``."""

    def __init__(self, root: Path, *extra: str, timeout: float = 1.0):
        self.root, self.port = root, free_port()
        self.args = [sys.executable, "-m", "tfkt_edge", "serve", "--port", str(self.port), "--store", str(root / "store"),
                     "--db", str(root / "results.sqlite"), "--series-timeout", str(timeout), "--workers", "1", *extra]
        self.process: subprocess.Popen | None = None

    @property
    def events_path(self) -> Path:
        return self.root / "results.sqlite.events.jsonl"

    def start(self) -> Server:
        self.log = open(self.root / f"server-{time.time_ns()}.log", "w")  # noqa: SIM115 (open while the server runs)
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "300"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {Path(self.log.name).read_text()}")
            if "listening as" in Path(self.log.name).read_text():
                return self
            time.sleep(0.1)
        raise RuntimeError("server did not start in 60 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.log.close()

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.root.glob("server-*.log")))

    def wait_output(self, *texts: str, seconds: float = 30) -> str:
        """The server's output once it holds every one of ``texts``: its console line for a result may come a
        moment after the result's event-log line (each sink delivers on its own)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            output = self.output()
            if all(text in output for text in texts):
                return output
            time.sleep(0.1)
        raise AssertionError(f"expected {texts!r} in the server's output:\n{self.output()}")

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line.strip()]

    def wait_events(self, count: int, seconds: float = 30) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            events = self.events()
            if len(events) >= count:
                return events
            time.sleep(0.1)
        raise AssertionError(f"expected {count} result(s), got {len(self.events())}; server said:\n{self.output()}")


@pytest.fixture
def server(tmp_path):
    started: list[Server] = []

    def start(*extra: str, timeout: float = 1.0) -> Server:
        s = Server(tmp_path, *extra, timeout=timeout).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def associate(port: int, ae_title: str = "SCU", contexts=(CTImageStorage, EnhancedCTImageStorage, Verification)):
    ae = AE(ae_title=ae_title)
    for context in contexts:
        ae.add_requested_context(context)
    return ae.associate("127.0.0.1", port, ae_title="TFKT")


def send(port: int, paths: list[Path], ae_title: str = "SCU") -> list[int]:
    assoc = associate(port, ae_title)
    assert assoc.is_established
    try:
        return [assoc.send_c_store(pydicom.dcmread(p)).Status for p in paths]
    finally:
        assoc.release()
