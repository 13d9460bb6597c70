"""The knowledge-transfer ablation on held-out CT, from real runs.

    python -m tfkt_edge.train.ablation --pretrain-epochs 12 --finetune-epochs 10 [--extra]

Arms (same model, same fine-tuning schedule, same seed):

- scratch: fine-tune on the CT corpus from random weights;
- transfer/all: pre-train on the offline natural-image corpus with every distortion type, then fine-tune;
- transfer/task-focused: pre-train on the CT-like distortion types only, then fine-tune;
- with --extra: frozen/task-focused (the pre-trained CNN kept fixed) and
  transfer/task-focused+rank (MSE plus the pairwise ranking loss).

The two pre-training arms get about the same number of training images seen
(task-focused runs more epochs over its smaller set), so selection, not compute,
is what differs. Figures are on the held-out split of the built-in CT corpus (by
source slice: no anatomy shared with training), after the last epoch. Each arm's
run directory is kept; an arm whose model.pt exists is not rerun. ``--tag`` names a
round (for example a longer pre-training): the pre-training and transfer arms get it as
a suffix, the scratch arm (which does not depend on pre-training) is shared, and the
results of every round accumulate in one JSON file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from tfkt_edge.evaluation.metrics import correlation_report
from tfkt_edge.train.stages import ctsim_split, pretrain_sets
from tfkt_edge.train.trainer import Callbacks, TrainConfig, load_checkpoint, predict, read_log, train


def _log(prefix: str) -> Callbacks:
    return Callbacks(on_epoch=lambda row: print(f"{prefix} epoch {row['epoch']}: " + ", ".join(
        f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"), flush=True))


def run_arm(name: str, config: TrainConfig, train_set, val_set, out: Path) -> Path:
    run_dir = out / name
    if not (run_dir / "model.pt").exists():
        print(f"== {name}: {len(train_set)} training images", flush=True)
        train(config, train_set, val_set, run_dir, resume=(run_dir / "last.pt").exists(), callbacks=_log(name))
    return run_dir / "model.pt"


def markdown_table(arms: dict) -> str:
    """The results as a Markdown table, one row per arm."""
    lines = ["| arm | pre-training images seen | PLCC | SROCC | KROCC | overall | first-epoch overall | fine-tune s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in arms.items():
        seen = f"{r['pretrain_images_seen']} ({r['pretrain_images']} x {r['pretrain_epochs']})" if "pretrain_images" in r else "-"
        lines.append(f"| {name} | {seen} | {r['plcc']:.3f} | {r['srocc']:.3f} | {r['krocc']:.3f} | **{r['overall']:.3f}** | "
                     f"{r['first_epoch_overall']:.3f} | {r['finetune_seconds']} |")
    return "\n".join(lines)


def plot_arms(arms: dict, path: Path) -> Path:
    """Held-out overall against fine-tuning epoch, one line per arm, from each run's log.csv."""
    from tfkt_edge.render.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    for name, result in arms.items():
        rows = read_log(Path(result["run_dir"]) / "log.csv")
        ax.plot([r["epoch"] for r in rows], [r["overall"] for r in rows], marker="o", markersize=3, label=name)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("held-out PLCC+SROCC+KROCC")
    ax.set_ylim(2.0, 3.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tfkt_edge_s")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--results", type=Path, default=Path("docs/ablation.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", action="store_true", help="also a frozen-backbone arm and an MSE+ranking-loss arm")
    parser.add_argument("--tag", default="", help="round name, appended to the pre-training and transfer arms")
    args = parser.parse_args(argv)
    suffix = f"-{args.tag}" if args.tag else ""

    command = "python -m tfkt_edge.train.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    ct_train, ct_heldout = ctsim_split(Path("data/ctsim"), "train"), ctsim_split(Path("data/ctsim"), "heldout")
    pretrained, seen = {}, {}
    for selection in ("task-focused", "all"):  # task-focused first: "all" is matched to the images it saw
        config = TrainConfig(stage="pretrain", model=args.model, dataset="skimage", selection=selection, seed=args.seed)
        nat_train, nat_val = pretrain_sets(config)
        epochs = args.pretrain_epochs if selection == "task-focused" else max(
            1, math.floor(seen["task-focused"]["pretrain_images_seen"] / len(nat_train) + 0.5))
        config = TrainConfig(**{**config.__dict__, "epochs": epochs})
        pretrained[selection] = run_arm(f"pretrain-{selection}{suffix}", config, nat_train, nat_val, args.out)
        seen[selection] = {"pretrain_images": len(nat_train), "pretrain_epochs": epochs, "pretrain_images_seen": epochs * len(nat_train)}

    # arm -> (mode, pre-training selection or None, loss)
    arms = {f"transfer/task-focused{suffix}": ("transfer", "task-focused", "mse"), "scratch": ("scratch", None, "mse"),
            f"transfer/all{suffix}": ("transfer", "all", "mse")}
    if args.extra:
        arms |= {f"frozen/task-focused{suffix}": ("frozen", "task-focused", "mse"),
                 f"transfer/task-focused+rank{suffix}": ("transfer", "task-focused", "mse+rank")}
    results = {}
    for arm, (mode, selection, loss) in arms.items():
        config = TrainConfig(stage="finetune", model=args.model, dataset="ctsim", mode=mode, loss=loss,
                             init=str(pretrained[selection]) if selection else "", epochs=args.finetune_epochs, seed=args.seed)
        started = time.perf_counter()
        model_path = run_arm("finetune-" + arm.replace("/", "-"), config, ct_train, ct_heldout, args.out)
        model, _ = load_checkpoint(model_path)
        figures = correlation_report(predict(model, ct_heldout), ct_heldout.labels)
        log = read_log(model_path.parent / "log.csv")
        results[arm] = {**{k: round(v, 4) for k, v in figures.items() if k != "n"}, "n": figures["n"],
                        "mode": mode, "loss": loss,
                        "finetune_epochs": args.finetune_epochs, "finetune_seconds": round(sum(r["seconds"] for r in log)),
                        "first_epoch_overall": round(log[0].get("overall", float("nan")), 4),
                        **(seen[selection] if selection else {}),
                        "command": command, "run_dir": str(model_path.parent)}
        print(arm, json.dumps(results[arm]), f"({time.perf_counter() - started:.0f} s)", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.results.read_text())["arms"] if args.results.exists() else {}
    args.results.write_text(json.dumps({"model": args.model, "seed": args.seed, "heldout_images": len(ct_heldout),
                                        "heldout_sources": sorted(set(ct_heldout.groups)),
                                        "arms": {**previous, **results}}, indent=2) + "\n")
    print(markdown_table({**previous, **results}))
    plot_arms({**previous, **results}, args.results.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
