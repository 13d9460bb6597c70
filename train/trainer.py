"""One training loop for both stages: natural-image pre-training and CT fine-tuning.

A run lives in one directory:

    config.json   the resolved configuration and the data it saw
    log.csv       one row per epoch: train loss, validation MSE/PLCC/SROCC/KROCC/overall, seconds
    loss.png      the loss and validation curves
    last.pt       everything needed to resume (weights, optimiser, schedule, random state)
    best.pt       weights of the epoch with the best validation overall
    model.pt      weights after the last epoch: what export and the next stage use

`resume=True` continues from last.pt after checking that the configuration is
the one the run started with.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tfkt_edge.errors import InputError
from tfkt_edge.evaluation.metrics import correlation_report
from tfkt_edge.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401  (re-exported)
from tfkt_edge.model.network import create_model
from tfkt_edge.train.imagesets import ImageSet
from tfkt_edge.train.losses import LOSSES

MODES = ("transfer", "scratch", "frozen")
LOG_FIELDS = ["epoch", "train_loss", "val_mse", "plcc", "srocc", "krocc", "overall", "lr", "seconds"]


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "finetune"  # "pretrain" (natural images) or "finetune" (CT)
    model: str = "tfkt_edge_s"
    dataset: str = "ctsim"
    data: str = ""  # dataset folder; "" = the built-in corpus's default location
    selection: str = "task-focused"  # natural-image distortion selection (distortions.py)
    mode: str = "scratch"  # transfer | scratch | frozen
    init: str = ""  # model.pt to start from (transfer, frozen)
    loss: str = "mse"
    rank_weight: float = 1.0
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 1e-4
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    val_fraction: float = 0.1
    seed: int = 0
    threads: int = 2

    def validate(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.mode in ("transfer", "frozen") and not self.init:
            raise InputError(f"mode {self.mode!r} needs --init, the model.pt of a pre-training run")
        if self.mode == "scratch" and self.init:
            raise InputError("mode 'scratch' starts from random weights; drop --init or choose --mode transfer")
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InputError("epochs and batch size must be at least 1 and the learning rate positive")


# Settings a resumed run may change without changing what is trained.
RESUMABLE_CHANGES = {"threads"}


@dataclass
class Callbacks:
    on_start: Callable[[int, int], None] | None = None  # (first epoch, steps per epoch)
    on_step: Callable[[int, float], None] | None = None  # (epoch, batch loss)
    on_epoch: Callable[[dict], None] | None = None  # the log row


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips and 90-degree rotations only: they leave noise texture untouched."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    batch = torch.rot90(batch, k, dims=(2, 3))
    if torch.rand(1, generator=generator) < 0.5:
        batch = torch.flip(batch, dims=(3,))
    return batch


@torch.no_grad()
def predict(model: nn.Module, images: ImageSet, batch_size: int = 16) -> np.ndarray:
    """Scores for every image of an ImageSet, in order."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = images.images(range(start, min(start + batch_size, len(images))))
        out.append(model(torch.from_numpy(batch).unsqueeze(1)).numpy())
    return np.concatenate(out)


def _initial_model(config: TrainConfig) -> nn.Module:
    model = create_model(config.model)
    if config.init:
        path = Path(config.init)
        if not path.is_file():
            raise InputError(f"--init {path}: no such checkpoint")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if checkpoint.get("model") != config.model:
            raise InputError(f"--init {path} holds {checkpoint.get('model')!r} weights, not {config.model!r}")
        model.load_state_dict(checkpoint["state_dict"])
    if config.mode == "frozen":
        for parameter in model.cnn.parameters():
            parameter.requires_grad_(False)
    return model


def _train_mode(model: nn.Module, config: TrainConfig) -> None:
    model.train()
    if config.mode == "frozen":
        model.cnn.eval()  # frozen means its batch-norm statistics too


def _check_resumable(run_dir: Path, config: TrainConfig) -> None:
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    # A setting the saved run predates counts as its default, which is what that run used.
    changed = [f.name for f in fields(config)
               if f.name not in RESUMABLE_CHANGES and saved.get(f.name, f.default) != getattr(config, f.name)]
    if changed:
        raise InputError(f"{run_dir} was started with different settings ({', '.join(changed)}); "
                         "resume with the same settings or start a new --run-dir")


def train(config: TrainConfig, train_set: ImageSet, val_set: ImageSet | None, run_dir: Path,
          resume: bool = False, callbacks: Callbacks | None = None) -> nn.Module:
    """Train ``config.model`` on ``train_set``; validate on ``val_set`` after each epoch.

    Raises:
        InputError: a bad configuration, an existing run without ``resume``, or a resume that does not match.
    """
    config.validate()
    callbacks = callbacks or Callbacks()
    torch.set_num_threads(config.threads)
    if len(train_set) == 0:
        raise InputError("the training set is empty")
    last = run_dir / "last.pt"
    if resume and not last.is_file():
        raise InputError(f"--resume: {run_dir} holds no last.pt to resume from")
    if not resume and last.is_file():
        raise InputError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        _check_resumable(run_dir, config)
    else:
        (run_dir / "config.json").write_text(json.dumps(
            {"config": asdict(config), "train_images": len(train_set), "val_images": len(val_set or ()),
             "train_groups": sorted(set(train_set.groups)), "val_groups": sorted(set(val_set.groups)) if val_set else [],
             "torch": str(torch.__version__)}, indent=2))

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = _initial_model(config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                   pct_start=0.1)
    loss_fn = LOSSES[config.loss]
    first_epoch, best = 1, -math.inf
    if resume:
        try:  # tensors and plain values only: a tampered last.pt cannot run code
            state = torch.load(last, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"cannot resume from {last}: not a checkpoint of tensors and plain values "
                             f"({str(exc).strip().splitlines()[0][:200]})") from None
        model.load_state_dict(state["state_dict"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        first_epoch, best = state["epoch"] + 1, state["best"]
        _truncate_log(run_dir / "log.csv", state["epoch"])
    elif (run_dir / "log.csv").exists():
        (run_dir / "log.csv").unlink()

    if callbacks.on_start:
        callbacks.on_start(first_epoch, steps_per_epoch)
    for epoch in range(first_epoch, config.epochs + 1):
        started = time.perf_counter()
        _train_mode(model, config)
        order = torch.randperm(len(train_set), generator=generator).numpy()
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            positions = np.sort(order[start : start + config.batch_size])
            batch = augment(torch.from_numpy(train_set.images(positions)).unsqueeze(1), generator)
            loss = loss_fn(model(batch), torch.from_numpy(train_set.labels[positions]), config.rank_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimiser.step()
            schedule.step()
            total += loss.item() * len(positions)
            if callbacks.on_step:
                callbacks.on_step(epoch, loss.item())
        row = {"epoch": epoch, "train_loss": total / len(order), "lr": schedule.get_last_lr()[0]}
        if val_set is not None and len(val_set) >= 2:
            predictions = predict(model, val_set)
            row["val_mse"] = float(np.mean((predictions - val_set.labels) ** 2))
            row.update({k: v for k, v in correlation_report(predictions, val_set.labels).items() if k != "n"})
        row["seconds"] = time.perf_counter() - started
        _append_log(run_dir / "log.csv", row)
        score = row.get("overall", -row["train_loss"])
        if not math.isnan(score) and score > best:
            best = score
            save_checkpoint(model, config, run_dir / "best.pt", {"epoch": epoch, **row})
        torch.save({"state_dict": model.state_dict(), "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                    "generator": generator.get_state(), "epoch": epoch, "best": best}, run_dir / "last.pt.tmp")
        (run_dir / "last.pt.tmp").replace(last)  # a kill mid-save leaves the previous last.pt intact
        _plot(run_dir)
        if callbacks.on_epoch:
            callbacks.on_epoch(row)
    model.eval()
    save_checkpoint(model, config, run_dir / "model.pt", {"epochs": config.epochs})
    return model


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _truncate_log(path: Path, last_epoch: int) -> None:
    """Keep only the epochs last.pt covers (a run killed after logging, before saving, logs it again)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["epoch"]) <= last_epoch]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_log(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def _plot(run_dir: Path) -> None:
    from tfkt_edge.render.plots import loss_curves

    loss_curves(read_log(run_dir / "log.csv"), run_dir / "loss.png", title=run_dir.name)


