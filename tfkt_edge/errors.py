"""Exceptions raised to users: one root, a few kinds, each carrying a message."""


class TfktEdgeError(Exception):
    """Root of every error tfkt-edge reports to a user."""


class ModelError(TfktEdgeError):
    """A model file is missing, unreadable, or lacks its preprocessing contract."""


class InputError(TfktEdgeError):
    """The paths or options given cannot be scored (nothing found, bad value)."""


class UnknownNameError(TfktEdgeError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DecodingError(TfktEdgeError):
    """A decoding process ended before finishing its work (killed, out of memory, a crash in a native decoder)."""


class BackendUnavailable(TfktEdgeError):
    """A backend's libraries or hardware are absent here (TensorRT, pycuda, torch, a CUDA GPU)."""


class ExportError(TfktEdgeError):
    """An artefact could not be made, or failed its check right after it was made."""
