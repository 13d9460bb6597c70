"""Reproduce the shipped default model end to end, with the two TFKT stages.

    python -m tfkt_edge.train.make_default

1. pre-trains tfkt_edge_s on the offline natural-image corpus (task-focused selection);
2. fine-tunes it on the training slices of the built-in CT corpus (transfer mode):
   real multi-vendor clinical CT from ../shared/realct and the pydicom packages,
   split by patient group;
3. measures PLCC/SROCC/KROCC on the held-out slices, saves the torch
   checkpoint, exports the ONNX model with its contract and card, and checks
   ONNX-vs-torch parity on the held-out images;
4. measures the validated domain on the training slices and the held-out
   real series figures (false alerts, misses, dose ladders; train/validate.py)
   and writes both into the card.

Both corpora are built on first use. The run directories are the ablation's
(`python -m tfkt_edge.train.ablation`) with the same settings, so a stage that
the ablation already ran (its model.pt exists) is not run twice.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from tfkt_edge.evaluation.metrics import correlation_report
from tfkt_edge.model.model_file import ASSETS
from tfkt_edge.model.network import create_model
from tfkt_edge.model.preprocess import LDCTIQAC
from tfkt_edge.train.ablation import run_arm
from tfkt_edge.train.corpus import LADDER, SPARSE_VIEWS, default_sources
from tfkt_edge.train.ctnoise import D_HALF, SHAPE
from tfkt_edge.train.ctnoise import LABEL_RULE as CT_LABEL_RULE
from tfkt_edge.train.ctsim import FULL_VIEWS
from tfkt_edge.train.natural_corpus import LABEL_RULE
from tfkt_edge.train.realct import HELDOUT_GROUPS
from tfkt_edge.train.stages import ctsim_split, pretrain_sets
from tfkt_edge.train.trainer import TrainConfig, load_checkpoint, predict, read_log, save_checkpoint
from tfkt_edge.verdict.bound import ScoreBound

CHECKPOINTS = Path(__file__).parent / "checkpoints"
CHECKS = ("domain limits and noise figures measured on the training split's real CT slices; score bound: the label "
          "rule the model was trained on")


def heldout_breakdown(predictions: np.ndarray, labels: np.ndarray, groups: tuple[str, ...]) -> dict:
    """Per held-out source: count, mean label and prediction, MAE, and the undegraded prediction."""
    out = {}
    groups_array = np.array(groups)
    for name in sorted(set(groups)):
        sel = groups_array == name
        p, y = predictions[sel], labels[sel]
        entry = {"n": int(sel.sum()), "mean_label": round(float(y.mean()), 3), "mean_prediction": round(float(p.mean()), 3),
                 "mae": round(float(np.abs(p - y).mean()), 3)}
        if (y >= 4.0).any():
            entry["undegraded_prediction"] = round(float(p[y >= 4.0].mean()), 3)
        if np.ptp(y) > 0:
            entry.update({k: round(v, 4) for k, v in correlation_report(p, y).items() if k != "n"})
        out[name] = entry
    return out


def _card(pretrain: TrainConfig, finetune: TrainConfig, figures: dict, sizes: dict, command: str, seconds: dict) -> dict:
    """The model card; ``onnx_torch_max_abs_diff`` is added once the export can be measured."""
    model = create_model(finetune.model)
    sources = default_sources()
    return {
        "name": finetune.model,
        "version": "0.4.0",  # labels calibrated to LDCTIQAC's readers; physics figures by kernel class and patient size
        "architecture": (f"{finetune.model}: the TFKT hybrid (tfkt_edge/model/network.py). EfficientNetV2 blocks (4x4 stride-4 stem, "
                         "Fused-MBConv 32, MBConv+SE 64 x2, MBConv+SE 96 x2, 1x1 conv to 128) give a 16x16 feature map; "
                         "a spatial bridge hands it to SwinV2 stages (1x1 patch embed to 96-d, 2 blocks with 8x8 shifted "
                         "windows and cosine attention, patch merging, 2 blocks at 192-d), mean-pooled; head "
                         "4*sigmoid(Linear) -> [0, 4]. The published TFKT V2 (tfkt_v2, 209 M parameters) pools the CNN "
                         "into a Linear(1280->4096) 64x64 map instead"),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "input": {"preprocess": json.loads(LDCTIQAC.to_json()), "layout": "N x 1 x 512 x 512 float32 in [0, 1]",
                  "window": "HU -1000..+400 -> 0..1 (LDCTIQAC 2023 convention)"},
        "output": "score per slice, float in [0, 4], higher is better (LDCTIQAC 0-4 scale)",
        "labels": CT_LABEL_RULE + " Pre-training labels: " + LABEL_RULE + ", a full-reference measure, not human opinion scores.",
        "training_data": {
            "stage1_pretrain": {
                "corpus": "offline natural-image corpus (train/natural_corpus.py): 16 photographs bundled with "
                          "scikit-image, KADID-10k-style distortion types at 5 levels, grey, 512x512",
                "selection": f"{pretrain.selection} (train/distortions.py: noise, blur, denoise, sharpen, contrast, "
                             "compression types only)",
                "train_images": sizes["pretrain_train"], "val_images": sizes["pretrain_val"],
                "split": "by reference photograph",
            },
            "stage2_finetune": {
                "corpus": "built-in CT simulator (docs/simulator.md) on real clinical CT only: the clinical slices of "
                          "../shared/realct (GE, Siemens, Toshiba, Philips; STANDARD, FC07/FC17 with AIDR 3D, FC30, FC52, "
                          "FC80, C, Br38f; chest, abdomen, pelvis, spine, head; axial and coronal/sagittal reformats; "
                          "0.5-5 mm) and the pydicom/pydicom-data slices. Each training slice also at another field of "
                          "view, as a sharper and a smoother reconstruction, and over-denoised after each degradation "
                          "(the waxy look readers mark down). Dose reduction (2-100%) inserted as ramp-spectrum noise "
                          "re-filtered to the image's own noise power spectrum and scaled to its own noise level "
                          "(quantum noise ~ 1/sqrt(dose)); sparse-view streaks "
                          f"({min(SPARSE_VIEWS)}-{max(SPARSE_VIEWS)} of {FULL_VIEWS} views) in the same texture",
                "heldout_ladder": f"each held-out slice at doses {', '.join(f'{d:g}' for d in LADDER)} and at 180 and 90 views",
                "train_sources": [s.name for s in sources if s.split == "train"],
                "heldout_sources": [s.name for s in sources if s.split == "heldout"],
                "train_images": sizes["train"], "heldout_images": sizes["heldout"],
                "split": f"by patient group (coronal/sagittal reformats stay with their patient); held out: {', '.join(HELDOUT_GROUPS)}",
            },
        },
        "training": {"pretrain": asdict(pretrain), "finetune": asdict(finetune), "optimiser": "AdamW, one-cycle schedule",
                     "augmentation": "flips and 90-degree rotations", "seconds": seconds,
                     "machine": "2-core CPU (the development machine), torch CPU"},
        "heldout_figures": figures,
        "reproduce": command,
        "torch": str(torch.__version__),
        "limits": "Labels are physics calibrated to the published statistics of LDCTIQAC 2023's readers (the per-version "
                  "sorted means of its test set), not radiologists' scores of these images: the absolute noise and "
                  "streaks a reader sees in the window they read with. Validated on held-out real slices, their "
                  "simulated dose ladders and the LDCTIQAC protocol re-created on them (see heldout_series and "
                  "recreation); no real low-dose acquisitions and no radiologist scores were available. Fine-tune on "
                  "LDCTIQAC 2023 (tfkt-edge train finetune --dataset ldctiqac) for radiologist-trained scores.",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tfkt_edge_s")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--loss", default="mse", help="fine-tuning loss: mse or mse+rank")
    parser.add_argument("--rank-weight", type=float, default=1.0, help="weight of the ranking term with --loss mse+rank")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--assets", type=Path, default=ASSETS, help="where the ONNX model and its card go (and, unless they are the shipped "
                                                                "ones, the held-out report)")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="where the torch checkpoint and training logs go (default: the shipped ones beside the "
                             "package with the default --assets, else --assets: a trial never overwrites what ships)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="the ablation round whose run directories to use or create")
    parser.add_argument("--init", type=Path, default=None,
                        help="fine-tune from this checkpoint (an earlier shipped model) instead of pre-training anew")
    parser.add_argument("--init-note", default="", help="how the --init checkpoint was made, for the card")
    parser.add_argument("--ladders", type=Path, default=None, help="where the held-out dose ladders are (written if absent)")
    args = parser.parse_args(argv)
    shipping = args.assets.resolve() == ASSETS.resolve()
    checkpoints = args.checkpoints or (CHECKPOINTS if shipping else args.assets)
    suffix = f"-{args.tag}" if args.tag else ""
    command = "python -m tfkt_edge.train.make_default " + " ".join(argv if argv is not None else sys.argv[1:])

    pretrain = TrainConfig(stage="pretrain", model=args.model, dataset="skimage", selection="task-focused",
                           epochs=args.pretrain_epochs, seed=args.seed)
    nat_train, nat_val = pretrain_sets(pretrain, progress=lambda name: print(f"  built {name}", flush=True))
    pretrained = args.init or run_arm(f"pretrain-task-focused{suffix}", pretrain, nat_train, nat_val, args.runs)
    finetune = TrainConfig(stage="finetune", model=args.model, dataset="ctsim", mode="transfer", init=str(pretrained),
                           epochs=args.finetune_epochs, seed=args.seed, loss=args.loss, rank_weight=args.rank_weight)
    ct_train = ctsim_split(Path("data/ctsim"), "train", progress=lambda name: print(f"  built {name}", flush=True))
    heldout = ctsim_split(Path("data/ctsim"), "heldout")
    model_path = run_arm(f"finetune-transfer-task-focused{suffix}", finetune, ct_train, heldout, args.runs)

    model, _ = load_checkpoint(model_path)
    predictions = predict(model, heldout)
    figures = {"all": correlation_report(predictions, heldout.labels),
               "by_source": heldout_breakdown(predictions, heldout.labels, heldout.groups)}
    logs = {"finetune": model_path.parent / "log.csv",
            "pretrain": CHECKPOINTS / f"{args.model}.pretrain.log.csv" if args.init else pretrained.parent / "log.csv"}
    seconds = {stage: round(sum(r["seconds"] for r in read_log(path))) for stage, path in logs.items()}
    if args.init:
        seconds["init"] = args.init_note or str(args.init)
    sizes = {"pretrain_train": len(nat_train), "pretrain_val": len(nat_val), "train": len(ct_train), "heldout": len(heldout)}

    from tfkt_edge.export.onnx import export_onnx, max_score_difference

    onnx_path = args.assets / f"{args.model}.onnx"
    from tfkt_edge.train.validate import NOT_VALIDATED, VALIDATED, measure_domain, measure_noise, series_figures

    card = _card(pretrain, finetune, figures, sizes, command, seconds)
    card["domain"] = json.loads(measure_domain().to_json())  # the runtime's domain check reads it from the card
    card["noise"] = measure_noise().to_dict()  # and the noise check its figures
    card["score_bound"] = ScoreBound(D_HALF, SHAPE).to_dict()  # the noise bound on the score: the label rule itself
    card["checks"] = CHECKS
    card["validation"] = {"validated": VALIDATED, "not_validated": NOT_VALIDATED}
    probe = heldout.images(range(min(32, len(heldout))))
    export_onnx(model, args.model, LDCTIQAC, card, onnx_path)
    card["onnx_torch_max_abs_diff"] = max_score_difference(model, onnx_path, probe)
    # The held-out real series figures, measured on the exported file itself, domain check included.
    card["heldout_series"] = series_figures(onnx_path, args.ladders)
    card["heldout_series_own_dose"] = series_figures(onnx_path, None, reference="own")["summary"]["all"]
    from tfkt_edge.train.recreation import run as recreate

    recreation = recreate(onnx_path, "heldout", progress=lambda name: print(f"  recreation {name}", flush=True))
    card["recreation"] = {k: v for k, v in recreation.items() if k != "rows"}
    export_onnx(model, args.model, LDCTIQAC, card, onnx_path)
    saved_pt = (args.assets if shipping else checkpoints) / f"{args.model}.pt"
    save_checkpoint(model, finetune, saved_pt, card)
    (args.assets / f"{args.model}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    from tfkt_edge.examples import EXAMPLES
    from tfkt_edge.export.in_graph import write_twin
    from tfkt_edge.train.validate import markdown_report

    # The CPU default: the same weights with the window and the statistics in the graph.
    write_twin(saved_pt, onnx_path, args.assets / f"{args.model}_stored.onnx", [EXAMPLES])

    # A trial's held-out report goes beside its assets: docs/heldout_real.md describes the shipped model only.
    report_dir = Path(__file__).resolve().parents[1] / "docs" if shipping else args.assets
    (report_dir / "heldout_real.md").write_text(markdown_report(card))
    shutil.copyfile(model_path.parent / "log.csv", checkpoints / f"{args.model}.log.csv")
    if not args.init:
        shutil.copyfile(pretrained.parent / "log.csv", checkpoints / f"{args.model}.pretrain.log.csv")
    print(json.dumps({"heldout": figures["all"], "onnx_torch_max_abs_diff": card["onnx_torch_max_abs_diff"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
