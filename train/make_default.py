"""Reproduce the shipped default model end to end.

    python -m tfkt_edge.train.make_default

builds the built-in CT corpus (if absent), trains tfkt_edge_s on its training
sources, measures PLCC/SROCC/KROCC on the held-out sources, saves the torch
checkpoint, exports the ONNX model with its contract and card, and checks
ONNX-vs-torch parity on the held-out images.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from tfkt_edge.model_file import ASSETS
from tfkt_edge.preprocess import LDCTIQAC

from .corpus import build_corpus, default_sources, load_split
from .ctsim import FULL_VIEWS, ROUTINE_I0
from .metrics import correlation_report
from .models import create_model
from .trainer import TrainConfig, load_checkpoint, predict, save_checkpoint, train

CHECKPOINTS = Path(__file__).parent / "checkpoints"
LABELS = ("Physics-derived, NOT radiologist scores: label = clip(4 - log2(1 + sigma/10 HU), 0, 4), "
          "sigma = RMS (HU, inside the body) of the noise and streaks inserted by the sinogram-domain simulator.")


def heldout_breakdown(predictions: np.ndarray, labels: np.ndarray, groups: np.ndarray, names: list[str]) -> dict:
    """Per held-out source: count, mean label and prediction, MAE, and the undegraded prediction."""
    out = {}
    for i, name in enumerate(names):
        sel = groups == i
        p, y = predictions[sel], labels[sel]
        entry = {"n": int(sel.sum()), "mean_label": round(float(y.mean()), 3), "mean_prediction": round(float(p.mean()), 3),
                 "mae": round(float(np.abs(p - y).mean()), 3)}
        if (y >= 4.0).any():
            entry["undegraded_prediction"] = round(float(p[y >= 4.0].mean()), 3)
        if np.ptp(y) > 0:
            entry.update({k: round(v, 4) for k, v in correlation_report(p, y).items() if k != "n"})
        out[name] = entry
    return out


def _card(config: TrainConfig, figures: dict, train_n: int, heldout_n: int, sources: list, command: str,
          training_seconds: int) -> dict:
    """The model card; ``onnx_torch_max_abs_diff`` is added once the export can be measured."""
    model = create_model(config.model)
    return {
        "name": config.model,
        "version": "0.1.0",
        "architecture": (f"{config.model}: TFKT-style hybrid. Patchify conv stem (stride 4) and inverted-residual CNN "
                         "stages, a linear bridge to a 16x16 token grid, a transformer with convolutional position "
                         "encoding, mean-pooled LayerNorm features, regression head 4*sigmoid -> [0, 4]"),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "input": {"preprocess": json.loads(LDCTIQAC.to_json()), "layout": "N x 1 x 512 x 512 float32 in [0, 1]",
                  "window": "HU -1000..+400 -> 0..1 (LDCTIQAC 2023 convention)"},
        "output": "score per slice, float in [0, 4], higher is better (LDCTIQAC 0-4 scale)",
        "labels": LABELS,
        "training_data": {
            "corpus": "built-in CT simulator (docs/simulator.md): real clinical slices from pydicom/pydicom-data "
                      "(each training slice also at 0.8x and 1.25x field of view) and procedural abdomen/head phantoms "
                      "(routine-dose noise at 0.5-2x the reference tube current), degraded by low-dose Poisson noise "
                      f"(routine I0 {ROUTINE_I0:g} photons/ray, dose 2-100%) and sparse views (45-{FULL_VIEWS} of {FULL_VIEWS}), "
                      "FBP, difference inserted into the original",
            "train_sources": [s.name for s in sources if s.split == "train"],
            "heldout_sources": [s.name for s in sources if s.split == "heldout"],
            "train_images": train_n, "heldout_images": heldout_n,
            "split": "by source slice: no anatomy is shared between training and held-out",
        },
        "training": {**asdict(config), "loss": "MSE", "augmentation": "flips and 90-degree rotations",
                     "seconds": training_seconds, "machine": "2-core CPU (the development machine), torch CPU"},
        "heldout_figures": figures,
        "reproduce": command,
        "torch": str(torch.__version__),
        "limits": "Trained on simulated degradations of a handful of real slices; not validated against radiologist "
                  "reads. Fine-tune on LDCTIQAC 2023 for radiologist-aligned scores.",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/ctsim"))
    parser.add_argument("--run-dir", type=Path, default=Path("runs/default"))
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--model", default=TrainConfig.model)
    parser.add_argument("--assets", type=Path, default=ASSETS)
    parser.add_argument("--export-only", action="store_true",
                        help="skip training: re-evaluate, re-export and re-card the saved checkpoint")
    args = parser.parse_args(argv)
    command = "python -m tfkt_edge.train.make_default " + " ".join(argv if argv is not None else sys.argv[1:])

    sources = default_sources()
    if not (args.corpus / "index.json").exists():
        print(f"building corpus in {args.corpus} ...", flush=True)
        build_corpus(args.corpus, sources, progress=lambda s: print(f"  {s.name} ({s.split})", flush=True))
    held_x, held_y, held_groups, held_names = load_split(args.corpus, "heldout")
    checkpoint_path = CHECKPOINTS / f"{args.model}.pt"
    if args.export_only:
        model, saved = load_checkpoint(checkpoint_path)
        config, command = TrainConfig(**saved["config"]), saved["card"]["reproduce"]
        train_n = saved["card"]["training_data"]["train_images"]
    else:
        train_x, train_y, _, _ = load_split(args.corpus, "train")
        train_n = len(train_y)
        print(f"train {train_n} images, held-out {len(held_y)}", flush=True)
        config = TrainConfig(model=args.model, epochs=args.epochs)
        model = train(config, (train_x, train_y), args.run_dir / "log.csv", (held_x, held_y),
                      on_epoch=lambda e, row: print(f"epoch {e}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"), flush=True))
        del train_x
    with (args.run_dir / "log.csv").open() as handle:
        training_seconds = round(sum(float(row["seconds"]) for row in csv.DictReader(handle)))
    predictions = predict(model, held_x)
    np.save(args.run_dir / "heldout_predictions.npy", predictions)
    figures = {"all": correlation_report(predictions, held_y),
               "by_source": heldout_breakdown(predictions, held_y, held_groups, held_names)}

    from tfkt_edge.export.onnx import export_onnx, max_score_difference

    onnx_path = args.assets / f"{config.model}.onnx"
    card = _card(config, figures, train_n, len(held_y), sources, command, training_seconds)
    export_onnx(model, config.model, LDCTIQAC, card, onnx_path)
    card["onnx_torch_max_abs_diff"] = max_score_difference(model, onnx_path, held_x[:32])
    export_onnx(model, config.model, LDCTIQAC, card, onnx_path)
    save_checkpoint(model, config, checkpoint_path, card)
    (args.assets / f"{config.model}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    shutil.copyfile(args.run_dir / "log.csv", CHECKPOINTS / f"{config.model}.log.csv")
    print(json.dumps({"heldout": figures, "onnx_torch_max_abs_diff": card["onnx_torch_max_abs_diff"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
