"""Supervised training of a quality model on preprocessed slices with 0-4 labels."""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from tfkt_edge.preprocess import LDCTIQAC

from .metrics import correlation_report
from .models import create_model


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tfkt_edge_s"
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips and 90-degree rotations only: they leave noise texture untouched."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    batch = torch.rot90(batch, k, dims=(2, 3))
    if torch.rand(1, generator=generator) < 0.5:
        batch = torch.flip(batch, dims=(3,))
    return batch


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size].astype(np.float32)).unsqueeze(1)
        out.append(model(batch).numpy())
    return np.concatenate(out)


def train(
    config: TrainConfig,
    train_data: tuple[np.ndarray, np.ndarray],
    log_path: Path,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> nn.Module:
    """Train ``config.model`` with MSE on (images, labels); log one CSV row per epoch."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = train_data
    model = create_model(config.model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", "train_mse", "plcc", "srocc", "krocc", "overall", "seconds"])
        writer.writeheader()
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(images), generator=generator).numpy()
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                index = np.sort(order[start : start + config.batch_size])
                batch = _augment(torch.from_numpy(images[index].astype(np.float32)).unsqueeze(1), generator)
                target = torch.from_numpy(labels[index])
                loss = nn.functional.mse_loss(model(batch), target)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss) * len(index)
            row = {"epoch": epoch, "train_mse": total / len(order)}
            if eval_data is not None:
                row.update({k: v for k, v in correlation_report(predict(model, eval_data[0]), eval_data[1]).items() if k != "n"})
            row["seconds"] = time.perf_counter() - started
            writer.writerow(row)
            handle.flush()
            if on_epoch is not None:
                on_epoch(epoch, row)
    return model.eval()


def save_checkpoint(model: nn.Module, config: TrainConfig, path: Path, card: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"model": config.model, "state_dict": model.state_dict(), "config": asdict(config),
         "preprocess": LDCTIQAC.to_json(), "card": card},
        path,
    )


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(checkpoint["model"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint
