"""Reproduce the shipped default model end to end.

    python -m tfkt_edge.train.make_default

builds the built-in CT corpus (if absent), trains tfkt_edge_s on its training
sources, measures PLCC/SROCC/KROCC on the held-out sources, saves the torch
checkpoint, exports the ONNX model with its contract and card, and checks
ONNX-vs-torch parity on the held-out images.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
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
from .trainer import TrainConfig, predict, save_checkpoint, train

CHECKPOINTS = Path(__file__).parent / "checkpoints"
LABELS = ("Physics-derived, NOT radiologist scores: label = clip(4 - log2(1 + sigma/10 HU), 0, 4), "
          "sigma = RMS (HU, inside the body) of the noise and streaks inserted by the sinogram-domain simulator.")


def _card(config: TrainConfig, figures: dict, train_n: int, heldout_n: int, sources: list, command: str, parity: float | None) -> dict:
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
            "corpus": "built-in CT simulator: real clinical slices from pydicom/pydicom-data and procedural phantoms, "
                      f"low-dose Poisson noise (routine I0 {ROUTINE_I0:g} photons/ray) and sparse views "
                      f"(of {FULL_VIEWS}), FBP, difference inserted into the original",
            "train_sources": [s.name for s in sources if s.split == "train"],
            "heldout_sources": [s.name for s in sources if s.split == "heldout"],
            "train_images": train_n, "heldout_images": heldout_n,
            "split": "by source slice: no anatomy is shared between training and held-out",
        },
        "training": asdict(config),
        "heldout_figures": figures,
        "onnx_torch_max_abs_diff": parity,
        "reproduce": command,
        "measured_on": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
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
    args = parser.parse_args(argv)
    command = "python -m tfkt_edge.train.make_default " + " ".join(argv if argv is not None else sys.argv[1:])

    sources = default_sources()
    if not (args.corpus / "index.json").exists():
        print(f"building corpus in {args.corpus} ...", flush=True)
        build_corpus(args.corpus, sources, progress=lambda s: print(f"  {s.name} ({s.split})", flush=True))
    train_x, train_y, _ = load_split(args.corpus, "train")
    held_x, held_y, _ = load_split(args.corpus, "heldout")
    print(f"train {len(train_y)} images, held-out {len(held_y)}", flush=True)

    config = TrainConfig(model=args.model, epochs=args.epochs)
    started = time.time()
    model = train(config, (train_x, train_y), args.run_dir / "log.csv", (held_x, held_y),
                  on_epoch=lambda e, row: print(f"epoch {e}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"), flush=True))
    print(f"trained in {time.time() - started:.0f}s", flush=True)
    figures = correlation_report(predict(model, held_x), held_y)
    np.save(args.run_dir / "heldout_predictions.npy", predict(model, held_x))

    from tfkt_edge.export.onnx import export_onnx, max_score_difference

    onnx_path = args.assets / f"{config.model}.onnx"
    card = _card(config, figures, len(train_y), len(held_y), sources, command, None)
    export_onnx(model, config.model, LDCTIQAC, card, onnx_path)
    parity = max_score_difference(model, onnx_path, held_x[:32])
    card["onnx_torch_max_abs_diff"] = parity
    export_onnx(model, config.model, LDCTIQAC, card, onnx_path)
    save_checkpoint(model, config, CHECKPOINTS / f"{config.model}.pt", card)
    (args.assets / f"{config.model}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    shutil.copyfile(args.run_dir / "log.csv", CHECKPOINTS / f"{config.model}.log.csv")
    print(json.dumps({"heldout": figures, "onnx_torch_max_abs_diff": parity}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
