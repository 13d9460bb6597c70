"""Every exit code of tfkt-edge, in one place; the README's table is this table."""

from __future__ import annotations

PASS = 0
ALERT = 1
USAGE = 2
OUTSIDE = 3
INTERRUPTED = 130
PIPE_CLOSED = 141  # as a shell reports SIGPIPE: standard output was closed by its reader

MEANING = {
    PASS: "success: every series passes (or the command did what it was asked)",
    ALERT: "at least one series raised a rescan alert",
    USAGE: "nothing scorable, a bad model, baseline, database or option, or a failed check (message on stderr)",
    OUTSIDE: "no alert, but at least one series lies outside the model's validated domain: its learned score was not "
             "acted on (physics judged it and found nothing wrong)",
    INTERRUPTED: "stopped with Ctrl-C",
    PIPE_CLOSED: "standard output was closed by its reader (for example | head); nothing more is written",
}
