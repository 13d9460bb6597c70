"""Settings for `serve` and `watch` from a TOML file and from environment variables, beside the flags.

Precedence, highest first: a flag on the command line, an environment variable
(``TFKT_EDGE_SERVE_PORT``, ``TFKT_EDGE_WATCH_SETTLE``: the command and the option's long name in capitals,
dashes as underscores), a setting in the ``--config`` file, the built-in default. The file holds the
long option names without their dashes, at the top level or under a table named for the command::

    [serve]
    ae-title = "TFKT"
    port = 11112
    allowed-callers = "CT1,CT2"

An unknown setting, a value of the wrong type or a file that is not TOML is one error line and exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

COMMANDS = ("serve", "watch")


def envvar_prefix(command: str) -> dict:
    """The context settings that let ``command``'s options be read from TFKT_EDGE_<COMMAND>_<OPTION>."""
    return {"auto_envvar_prefix": f"TFKT_EDGE_{command.upper()}"}


def load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """The ``--config`` callback (eager): the file's settings become the command's defaults."""
    if value is None:
        return None
    try:
        data = tomllib.loads(value.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {value}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"{value} is not a TOML file ({exc})") from None
    command = ctx.info_name or ""
    section = data.get(command, {k: v for k, v in data.items() if k not in COMMANDS})
    if not isinstance(section, dict):
        raise typer.BadParameter(f"{value}: [{command}] must be a table of settings")
    options = {p.name: p for p in ctx.command.params if p.param_type_name == "option" and p.name != param.name}
    defaults = {}
    for key, setting in section.items():
        name = key.replace("-", "_")
        if name not in options:
            raise typer.BadParameter(f"{value}: {key!r} is not a setting of {command} (see {command} -h)")
        if isinstance(setting, (dict, list)):
            raise typer.BadParameter(f"{value}: {key!r} must be a single value")
        defaults[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value
