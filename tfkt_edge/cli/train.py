"""`tfkt-edge train pretrain|finetune`: the two TFKT training stages."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tfkt_edge.cli.boundary import CommandGroup
from tfkt_edge.cli.console import StdoutConsole
from tfkt_edge.cli.training_extra import require_training_extra

app = typer.Typer(help="Train models: natural-image pre-training, then CT fine-tuning.", no_args_is_help=True, cls=CommandGroup)


class Selection(str, Enum):
    task_focused = "task-focused"
    all = "all"


class Mode(str, Enum):
    transfer = "transfer"
    scratch = "scratch"
    frozen = "frozen"


class Loss(str, Enum):
    mse = "mse"
    mse_rank = "mse+rank"


ModelName = Annotated[str, typer.Option("--model", help="Registered variant (see `tfkt-edge models`).")]
DataDir = Annotated[Optional[Path], typer.Option("--data", help="Dataset folder (built-in corpora default to data/<name>).")]
RunDir = Annotated[Optional[Path], typer.Option("--run-dir", help="Where config, log, curves and checkpoints go (default runs/<stage>-<dataset>).")]
Epochs = Annotated[int, typer.Option("--epochs", min=1)]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, max=512)]
Lr = Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate of the one-cycle schedule (AdamW).")]
Seed = Annotated[int, typer.Option("--seed", help="Seeds weights, shuffling, augmentation and splits.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir from its last.pt.")]
ValFraction = Annotated[float, typer.Option("--val-fraction", min=0.0, max=0.5, help="Share held out for validation.")]


def _run(stage: str, settings: dict, run_dir: Path | None, resume: bool) -> None:
    require_training_extra()
    from tfkt_edge.train.stages import finetune_sets, pretrain_sets
    from tfkt_edge.train.trainer import Callbacks, TrainConfig, train

    err, console = Console(stderr=True), StdoutConsole()
    config = TrainConfig(stage=stage, **settings)
    run_dir = run_dir or Path("runs") / f"{stage}-{config.dataset}"
    try:
        config.validate()
        console.print(f"loading {config.dataset} ...", highlight=False)
        sets = pretrain_sets if stage == "pretrain" else finetune_sets
        train_set, val_set = sets(config, progress=lambda name: console.print(f"  built {name}", highlight=False))
        console.print(f"{stage}: {config.model} on {len(train_set)} images, validating on {len(val_set)}; run dir {run_dir}",
                      highlight=False)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("epoch", total=None)

            def start(first_epoch: int, steps: int) -> None:
                progress.update(task, total=steps, completed=0, description=f"epoch {first_epoch}/{config.epochs}")

            def epoch_done(row: dict) -> None:
                figures = ", ".join(f"{k} {row[k]:.4f}" for k in ("train_loss", "val_mse", "overall") if k in row)
                progress.console.print(f"epoch {int(row['epoch'])}: {figures} ({row['seconds']:.0f} s)", highlight=False)
                if int(row["epoch"]) < config.epochs:
                    progress.update(task, completed=0, description=f"epoch {int(row['epoch']) + 1}/{config.epochs}")
                else:
                    progress.update(task, visible=False)

            train(config, train_set, val_set, run_dir, resume=resume,
                  callbacks=Callbacks(on_start=start, on_step=lambda *_: progress.advance(task), on_epoch=epoch_done))
    except KeyboardInterrupt:
        # last.pt holds the last finished epoch; nothing of it is lost.
        err.print(f"interrupted: continue with the same command and --resume (run dir {run_dir})", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    console.print(f"done: {run_dir / 'model.pt'} (curves {run_dir / 'loss.png'}, log {run_dir / 'log.csv'})", highlight=False)


@app.command()
def pretrain(
    dataset: Annotated[str, typer.Option("--dataset", help="skimage (offline, built in), kadid10k, koniq10k, tid2013, livec or spaq.")] = "skimage",
    data: DataDir = None,
    selection: Annotated[Selection, typer.Option("--selection", help="task-focused: only CT-like distortion types; all: every type.")] = Selection.task_focused,
    model: ModelName = "tfkt_edge_s",
    epochs: Epochs = 12,
    batch_size: BatchSize = 8,
    lr: Lr = 5e-4,
    val_fraction: ValFraction = 0.1,
    seed: Seed = 0,
    run_dir: RunDir = None,
    resume: Resume = False,
) -> None:
    """Stage 1: learn perceptual quality from natural images with opinion (or full-reference) scores.

    Example: tfkt-edge train pretrain --dataset skimage --run-dir runs/pretrain
    """
    _run("pretrain", dict(dataset=dataset, data=str(data or ""), selection=selection.value, model=model, epochs=epochs,
                          batch_size=batch_size, lr=lr, val_fraction=val_fraction, seed=seed, mode="scratch"), run_dir, resume)


@app.command()
def finetune(
    dataset: Annotated[str, typer.Option("--dataset", help="ldctiqac (the 2023 challenge layout) or ctsim (offline, built in).")] = "ctsim",
    data: DataDir = None,
    mode: Annotated[Mode, typer.Option("--mode", help="transfer: start from --init; frozen: also keep its CNN fixed; scratch: random weights.")] = Mode.transfer,
    init: Annotated[Optional[Path], typer.Option("--init", help="model.pt of a pre-training run (transfer, frozen).")] = None,
    loss: Annotated[Loss, typer.Option("--loss", help="mse, or mse+rank (adds a pairwise ranking term).")] = Loss.mse,
    rank_weight: Annotated[float, typer.Option("--rank-weight", min=0.0)] = 1.0,
    model: ModelName = "tfkt_edge_s",
    epochs: Epochs = 10,
    batch_size: BatchSize = 8,
    lr: Lr = 5e-4,
    val_fraction: ValFraction = 0.1,
    seed: Seed = 0,
    run_dir: RunDir = None,
    resume: Resume = False,
) -> None:
    """Stage 2: fine-tune on CT slices scored 0-4 (LDCTIQAC, or the built-in simulator corpus).

    Example: tfkt-edge train finetune --dataset ldctiqac --data LDCTIQAG2023_train --mode transfer --init runs/pretrain/model.pt
    """
    _run("finetune", dict(dataset=dataset, data=str(data or ""), mode=mode.value, init=str(init or ""), loss=loss.value,
                          rank_weight=rank_weight, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                          val_fraction=val_fraction, seed=seed), run_dir, resume)
