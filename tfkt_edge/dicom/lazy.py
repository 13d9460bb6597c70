"""pydicom, imported when a file first needs it: plain files are read without it (`header.plain_value`,
`pixels.read_int16_into`), and its import costs about 90 ms of a one-file score's 0.3 s on a 2-core CPU.

Header-reading and decoding threads may each need it first at the same moment; one import under a lock
keeps the second from seeing a module the first has only half imported.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()


def import_pydicom() -> None:
    """Import pydicom (and the submodules its package imports) once, whichever thread asks first."""
    with _lock:
        import pydicom  # noqa: F401
