"""Where the service keeps its data unless told otherwise: one per-user data directory.

`serve`, `watch` and `results` default their results database (and `serve` its instance store) to
the same place whatever the working directory, so `results` run from another folder finds what the
node recorded. The place is ``TFKT_EDGE_HOME`` where set (a deployment's data volume), else the
platform's per-user data directory (platformdirs: ``~/.local/share/tfkt-edge`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_path

HOME_VARIABLE = "TFKT_EDGE_HOME"
DATABASE_NAME = "tfkt-results.sqlite"
STORE_NAME = "store"


def data_dir() -> Path:
    """The data directory (not created here: a command that writes creates what it writes)."""
    home = os.environ.get(HOME_VARIABLE, "").strip()
    return Path(home).expanduser() if home else user_data_path("tfkt-edge", appauthor=False)


def default_db() -> Path:
    return data_dir() / DATABASE_NAME


def default_store() -> Path:
    return data_dir() / STORE_NAME
