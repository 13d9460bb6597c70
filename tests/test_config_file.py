"""`serve`/`watch` settings from a TOML file and environment variables: precedence and refusals, on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tfkt_edge.cli.main import app

from .node import Server

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _banner(tmp_path: Path, config: str, *flags: str, env: dict | None = None) -> str:
    """Start a real `serve` with ``config`` and ``flags`` (and ``env``), return its start-up line, stop it."""
    path = tmp_path / "site.toml"
    path.write_text(config)
    node = Server(tmp_path, "--config", str(path), *flags)
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        node.start()
        return next(line for line in Path(node.log.name).read_text().splitlines() if "listening as" in line)
    finally:
        node.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_flag_beats_an_environment_variable_which_beats_the_file(tmp_path):
    config = '[serve]\nae-title = "FROMFILE"\nseries-timeout = 7.5\n'  # the test node's own --series-timeout 1 wins
    assert "listening as FROMFILE " in (line := _banner(tmp_path, config)) and "after 1 s" in line
    assert "listening as FROMENV " in _banner(tmp_path, config, env={"TFKT_EDGE_SERVE_AE_TITLE": "FROMENV"})
    assert "listening as FROMFLAG " in _banner(tmp_path, config, "--ae-title", "FROMFLAG",
                                                env={"TFKT_EDGE_SERVE_AE_TITLE": "FROMENV"})


def test_the_shipped_site_file_starts_a_node(tmp_path):
    """deploy/serve.toml as a site would install it (port and data paths moved into the test's folder)."""
    site = (ROOT / "deploy" / "serve.toml").read_text().replace("0.0.0.0", "127.0.0.1").replace("9464", "0")
    line = _banner(tmp_path, site)
    assert "listening as TFKT on 127.0.0.1:" in line and "metrics http://127.0.0.1:" in line


@pytest.mark.parametrize("content, says", [
    ("bogus = 1\n", "'bogus' is not a setting of serve"),
    ("[serve]\nport = 'many'\n", "--port"),
    ("port = [1, 2]\n", "must be a single value"),
    ("this is not toml\n", "is not a TOML file"),
])
def test_a_bad_settings_file_is_refused_with_exit_2(tmp_path, content, says):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = runner.invoke(app, ["serve", "--config", str(path), "--db", str(tmp_path / "db.sqlite")])
    assert result.exit_code == 2 and says in " ".join(result.output.replace("│", " ").split())
    assert not (tmp_path / "db.sqlite").exists()


def test_the_unit_file_runs_what_the_docs_say(tmp_path):
    """The systemd unit's ExecStart is a `tfkt-edge serve --config` line that this CLI accepts."""
    unit = (ROOT / "deploy" / "tfkt-edge.service").read_text()
    (exec_start,) = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    program, *args = exec_start.split()
    assert program.endswith("/bin/tfkt-edge") and args[:3] == ["serve", "--config", "/etc/tfkt-edge/serve.toml"]
    help_text = subprocess.run([sys.executable, "-m", "tfkt_edge", "serve", "-h"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "200"}).stdout
    assert "--config" in help_text and "--metrics-port" in help_text
    assert "Environment=TFKT_EDGE_HOME=/var/lib/tfkt-edge" in unit and "User=tfkt" in unit
    docker = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "USER tfkt" in docker and 'CMD ["serve", "--config", "/etc/tfkt-edge/serve.toml"]' in docker
