"""`tfkt-edge triton-serve`: the pip-installable Triton Inference Server on a repository, for many scanner nodes."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from tfkt_edge.cli.console import StdoutConsole
from tfkt_edge.errors import InputError


def triton_serve(
    repository: Annotated[Path, typer.Argument(help="Model repository written by tfkt-edge export triton.", show_default=False)],
    server_env: Annotated[Path, typer.Option("--server-env", help="Python environment holding nvidia-pytriton and onnxruntime (numpy < 2).", show_default=False)],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    grpc_port: Annotated[int, typer.Option("--grpc-port", min=1, max=65535, help="gRPC port (what nodes give to --url).")] = 8001,
    http_port: Annotated[int, typer.Option("--http-port", min=1, max=65535, help="HTTP port (health: /v2/health/ready).")] = 8000,
    metrics_port: Annotated[int, typer.Option("--metrics-port", min=1, max=65535, help="Prometheus metrics port.")] = 8002,
    log_file: Annotated[Optional[Path], typer.Option("--log", help="Write tritonserver's own log here.")] = None,
) -> None:
    """Serve the repository's Python-backend models with the tritonserver bundled in nvidia-pytriton, on loopback
    unless --host says otherwise. Stop with Ctrl-C or SIGTERM: the server stops with it.

    Example: tfkt-edge triton-serve /srv/triton-models --server-env /opt/triton-env --host 0.0.0.0
    """
    from tfkt_edge.backends.triton_server import ServeSettings, TritonServer

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = TritonServer(ServeSettings(repository, server_env, host, grpc_port, http_port, metrics_port), log_file)
    try:
        server.start()
        assert server.process is not None
        StdoutConsole().print(f"tfkt-edge: Triton serving {', '.join(server.models)} on {host}: gRPC {grpc_port}, HTTP {http_port}, "
                        f"metrics {metrics_port} (tritonserver pid {server.process.pid}; log {server.log_path})",
                        highlight=False, soft_wrap=True)
        while not stop.wait(0.5):
            if server.process is None or server.process.poll() is not None:
                code = None if server.process is None else server.process.returncode
                raise InputError(f"tritonserver exited ({code}): {server.last_lines()}")
    finally:
        server.stop()
