"""The torch checkpoint of a model: weights plus what they are (name, training settings, contract, card).

Beside the model code, so the runtime's torch backend and the ONNX export load a
checkpoint without importing the trainer. Like `network`, it needs torch; nothing on the scoring path imports
it (tests/test_without_torch.py).
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path

try:
    import torch
    from torch import nn
except ImportError as exc:  # the scanner-side runtime never imports this module: it scores ONNX files without torch
    raise ImportError(f"{__name__} (checkpoint loading) needs PyTorch: pip install 'tfkt-edge[train]'; only the torch backend, "
                      "the TFKT V2 benchmark reference and the training and export stages use it") from exc

from tfkt_edge.model.network import create_model
from tfkt_edge.model.preprocess import LDCTIQAC


def save_checkpoint(model: nn.Module, config, path: Path, card: dict) -> None:
    """``config`` is the training settings (a dataclass with a ``model`` name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config)
    torch.save({"model": settings["model"], "state_dict": model.state_dict(), "config": settings,
                "preprocess": LDCTIQAC.to_json(), "card": card}, path)


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """The model in eval mode and the checkpoint's contents; tensors and plain values only (no code runs)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(checkpoint["model"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint
