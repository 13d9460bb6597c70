"""Running the pip-installable Triton Inference Server (the `tritonserver` inside nvidia-pytriton) on a repository.

That wheel bundles `tritonserver` with the Python backend only, and its Python
stub needs numpy < 2, so it runs from a Python environment of its own (the
*server environment*: `python -m venv ENV && ENV/bin/pip install
nvidia-pytriton==0.7.0 onnxruntime`), while tfkt-edge and its clients stay on
numpy 2. Three things make the bundled server start outside PyTriton:

- the stub must be the one built for the server environment's Python version,
  in the backend folder: a folder of links is made for it;
- the wheel's own libraries (``nvidia_pytriton.libs``) and the matching
  ``libpython`` must be on ``LD_LIBRARY_PATH``;
- the stub runs Python isolated, so the server environment's ``bin`` must come
  first on ``PATH`` (``PYTHONPATH`` is ignored).

The server runs in the foreground of this process: SIGINT and SIGTERM stop it
(SIGTERM, then SIGKILL after ``STOP_S``), and on Linux it is also killed if this
process dies, so it never outlives its launcher.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tfkt_edge.errors import InputError

log = logging.getLogger("tfkt_edge.triton")
STOP_S = 30.0
PR_SET_PDEATHSIG = 1

_LOCATE = """
import json, os, sys, sysconfig
import pytriton
root = os.path.dirname(pytriton.__file__)
print(json.dumps({"root": root, "libs": os.path.join(os.path.dirname(root), "nvidia_pytriton.libs"),
                  "libpython": sysconfig.get_config_var("LIBDIR"), "version": "%d.%d" % sys.version_info[:2]}))
"""


@dataclass(frozen=True)
class ServerFiles:
    binary: Path
    python_backend: Path
    stub: Path
    libs: list[Path]
    bin: Path  # the server environment's bin folder, first on PATH for the stub


def locate(server_env: Path) -> ServerFiles:
    """The bundled server's files in ``server_env``; InputError with the install command when absent."""
    python = server_env / "bin" / "python"
    install = f"python -m venv {server_env} && {server_env}/bin/pip install nvidia-pytriton==0.7.0 onnxruntime"
    if not python.exists():
        raise InputError(f"--server-env {server_env} is not a Python environment; make one: {install}")
    found = subprocess.run([str(python), "-c", _LOCATE], capture_output=True, text=True, timeout=120)
    if found.returncode != 0:
        raise InputError(f"--server-env {server_env} has no nvidia-pytriton; install it: {install}")
    facts = json.loads(found.stdout)
    root = Path(facts["root"]) / "tritonserver"
    files = ServerFiles(binary=root / "bin" / "tritonserver", python_backend=root / "backends" / "python",
                        stub=root / "python_backend_stubs" / facts["version"] / "triton_python_backend_stub",
                        libs=[Path(facts["libs"]), Path(facts["libpython"])], bin=server_env / "bin")
    for path in (files.binary, files.python_backend, files.stub):
        if not path.exists():
            raise InputError(f"the nvidia-pytriton in {server_env} lacks {path}")
    return files


def backend_folder(files: ServerFiles, work: Path) -> Path:
    """A backend folder whose python/ holds the backend's files and the stub for this Python, as links."""
    python = work / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in files.python_backend.iterdir():
        if source.name != "__pycache__":
            (python / source.name).symlink_to(source)
    (python / "triton_python_backend_stub").unlink(missing_ok=True)
    (python / "triton_python_backend_stub").symlink_to(files.stub)
    return work / "backends"


def python_models(repository: Path) -> list[str]:
    """The Python-backend variants in a repository written by `tfkt-edge export triton`."""
    return sorted(p.parent.name for p in repository.glob("*/config.pbtxt") if 'backend: "python"' in p.read_text())


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the launcher's own signal handling still stops the server


@dataclass(frozen=True)
class ServeSettings:
    repository: Path
    server_env: Path
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    models: tuple[str, ...] = ()  # default: every Python-backend variant


class TritonServer:
    """One `tritonserver` process; ``start`` returns once it is ready or raises with its last log lines."""

    def __init__(self, settings: ServeSettings, log_path: Path | None = None):
        if not settings.repository.is_dir():
            raise InputError(f"{settings.repository} is not a model repository folder (tfkt-edge export triton --output)")
        self.settings = settings
        self.models = list(settings.models) or python_models(settings.repository)
        if not self.models:
            raise InputError(f"{settings.repository} holds no Python-backend model; write one with tfkt-edge export triton")
        self.files = locate(settings.server_env)
        self._work = tempfile.TemporaryDirectory(prefix="tfkt-triton-")
        self.log_path = log_path or Path(self._work.name) / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    def command(self, backends: Path) -> list[str]:
        s = self.settings
        return [str(self.files.binary), f"--model-repository={s.repository.resolve()}", f"--backend-directory={backends}",
                "--model-control-mode=explicit", *[f"--load-model={m}" for m in self.models],
                f"--http-address={s.host}", f"--http-port={s.http_port}", f"--grpc-address={s.host}",
                f"--grpc-port={s.grpc_port}", f"--metrics-address={s.host}", f"--metrics-port={s.metrics_port}",
                "--exit-on-error=true", "--strict-readiness=true", "--log-verbose=0"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = ":".join(str(p) for p in self.files.libs)
        env["LD_LIBRARY_PATH"] = f"{libs}:{env['LD_LIBRARY_PATH']}" if env.get("LD_LIBRARY_PATH") else libs
        env["PATH"] = f"{self.files.bin}:{env.get('PATH', '')}"
        return env

    def start(self, timeout: float = 120.0) -> None:
        backends = backend_folder(self.files, Path(self._work.name))
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(self.command(backends), stdout=out, stderr=subprocess.STDOUT,
                                            env=self.environment(), preexec_fn=_die_with_parent)
        log.info("tritonserver pid %d", self.process.pid)
        deadline = time.monotonic() + timeout
        url = f"http://{self.settings.host}:{self.settings.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InputError(f"tritonserver exited with {self.process.returncode}: {self.last_lines()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise InputError(f"tritonserver was not ready within {timeout:.0f} s: {self.last_lines()}")

    def last_lines(self, n: int = 3) -> str:
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_S; the exit code, or None when it was not running."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._work.cleanup()
        return process.returncode
