"""The LDCTIQAC 2023 protocol and a denoising reader study, re-created on real slices, scored by a model
and by the global noise index side by side.

    python -m tfkt_edge.train.recreation [--model FILE] [--split heldout] [-o docs/recreation.json]

1. **The LDCTIQAC protocol** (`label_fit`): each real abdominal slice of the split in 12 versions, doses
   100/50/25/10% (noise inserted even at 100%, as the organisers did) x 720/360/180 views. Reported: the
   per-version sorted means of the model's scores beside the labels' and the readers' (FIELD), and the
   challenge metric (PLCC + SROCC + KROCC against the labels) of the model and of the noise index.
2. **A denoising study** (like the blind reader studies FIELD cites): each slice at normal dose and at 25%,
   each also denoised at six strengths (Gaussian, 0.25-0.04 cycles per pixel: from an iterative
   reconstruction to a waxy over-smoothed image): 14 versions. Reported: the per-slice Spearman of the model
   and of the noise index against the labels (which mark over-smoothing down), and how many slices each
   ranks the right way.

The labels are the documented label rule (`ctnoise.LABEL_RULE`), not readers' scores of these images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tfkt_edge.evaluation.metrics import correlation_report, srocc
from tfkt_edge.model.preprocess import LDCTIQAC, pad_square, preprocess
from tfkt_edge.train.ctnoise import SOFT_WINDOW, KernelVariant, TexturedSimulator, label_image, noise_kept, smoothing_penalty
from tfkt_edge.train.label_fit import DOSES, PUBLIC_SORTED_MEANS, VIEWS, is_abdominal, sorted_means
from tfkt_edge.verdict.bound import capped
from tfkt_edge.verdict.noise import measure

DENOISE = (0.25, 0.15, 0.1, 0.07, 0.05, 0.04)  # Gaussian strengths, cycles per pixel at 1 sigma


def _versions(hu: np.ndarray, pixel_mm: float, seed: int):
    """(protocol versions, denoising versions): lists of (HU image, label)."""
    sim = TexturedSimulator(hu, pixel_mm, np.random.default_rng(seed), draws=2)
    own, unit = sim.prepare(hu)
    protocol = []
    for k, dose in enumerate(DOSES):
        for views in VIEWS:
            image = hu + unit[k % 2] * own.sigma / np.sqrt(dose)  # inserted at every dose, 100% included
            streaks = 0.0
            if views < VIEWS[0]:
                delta = sim._streak(views)
                image = image + delta
                streaks = float(np.sqrt(np.mean(delta[sim.soft] ** 2))) if sim.soft.any() else 0.0
            protocol.append((image, label_image(own.sigma * np.sqrt(1.0 + 1.0 / dose), streaks, SOFT_WINDOW)))
    study = []
    for k, dose in enumerate((1.0, 0.25)):
        noisy = hu + unit[k] * own.sigma * np.sqrt(max(0.0, 1.0 / dose - 1.0))
        noise = own.sigma / np.sqrt(dose)
        study.append((noisy, label_image(noise, 0.0, SOFT_WINDOW)))
        for strength in DENOISE:
            variant = KernelVariant("denoise", strength)
            kept = noise_kept(variant, unit[k])
            study.append((variant.reconstruct(noisy), label_image(kept * noise, 0.0, SOFT_WINDOW,
                                                                   smoothing_penalty(1.0, kept))))
    return protocol, study


def _score(backend, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(learned scores, noise index, verdict scores: the learned ones capped by the noise bound) of images
    of a soft kernel, as the runtime scores them (`tfkt_edge.verdict.bound`)."""
    batch = np.stack([preprocess(im, LDCTIQAC) for im in images])[:, None]
    noise = [measure(x[0])[0] for x in batch]
    learned = backend.infer(batch).astype(float)
    bound = backend.model.score_bound
    verdict = [capped(bound, g, n, "soft", backend.model.contract) for g, n in zip(learned, noise)]
    return learned, np.array([np.nan if n is None else n for n in noise]), np.array(verdict)


def run(model: Path | None, split: str = "heldout", progress=None) -> dict:
    from tfkt_edge.backends import create_backend
    from tfkt_edge.dicom import load_hu, scan
    from tfkt_edge.train.realct import training_slices

    backend = create_backend("onnxruntime", model)
    rows = []
    for i, s in enumerate(training_slices()):
        if s.split != split or not is_abdominal(s.body_part, s.plane, s.kernel, s.group):
            continue
        ref = scan([s.path]).series[0].slices[0]
        protocol, study = _versions(pad_square(load_hu(ref), -1000.0), ref.pixel_spacing or 0.7, 100 + i)
        p_scores, p_noise, p_verdict = _score(backend, [im for im, _ in protocol])
        d_scores, d_noise, d_verdict = _score(backend, [im for im, _ in study])
        rows.append({"slice": f"{s.group}/{s.path.name}", "source": s.group,
                     "protocol": {"labels": [lb for _, lb in protocol], "scores": p_scores.tolist(),
                                  "verdict_scores": p_verdict.tolist(), "noise_hu": p_noise.tolist()},
                     "study": {"labels": [lb for _, lb in study], "scores": d_scores.tolist(),
                               "verdict_scores": d_verdict.tolist(), "noise_hu": d_noise.tolist()}})
        if progress is not None:
            progress(rows[-1]["slice"])
    backend.close()
    return {"model": str(model or "shipped"), "split": split, "slices": len(rows), **summarise(rows), "rows": rows}


def _overall(predicted, labels) -> dict:
    return {k: round(abs(v), 4) if isinstance(v, float) else v for k, v in correlation_report(predicted, labels).items()}


def summarise(rows: list[dict]) -> dict:
    """The figures of the verdict score ("model": the learned score capped by the noise bound), of the learned
    score alone ("learned") and of the noise index."""
    labels = np.concatenate([r["protocol"]["labels"] for r in rows])
    scores = np.concatenate([r["protocol"]["verdict_scores"] for r in rows])
    learned = np.concatenate([r["protocol"]["scores"] for r in rows])
    noise = np.concatenate([r["protocol"]["noise_hu"] for r in rows])
    measured = np.isfinite(noise)
    study = []
    for r in rows:
        y = r["study"]["labels"]
        study.append((srocc(r["study"]["verdict_scores"], y), srocc(-np.array(r["study"]["noise_hu"]), y),
                      srocc(r["study"]["scores"], y)))
    study_arr = np.array(study)
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    return {
        "protocol": {
            "public_sorted_means": list(PUBLIC_SORTED_MEANS),
            "label_sorted_means": [round(float(v), 3) for v in sorted_means([r["protocol"]["labels"] for r in rows])],
            "model_sorted_means": [round(float(v), 3) for v in sorted_means([r["protocol"]["verdict_scores"] for r in rows])],
            "learned_sorted_means": [round(float(v), 3) for v in sorted_means([r["protocol"]["scores"] for r in rows])],
            "model_sorted_means_by_source": {
                name: [round(float(v), 3) for v in sorted_means([r["protocol"]["verdict_scores"] for r in members])]
                for name, members in sorted(by_source.items())},
            "model": _overall(scores, labels),
            "learned": _overall(learned, labels),
            "noise_index": _overall(-noise[measured], labels[measured]),
        },
        "denoising_study": {
            "model_srocc_mean": round(float(np.nanmean(study_arr[:, 0])), 4),
            "noise_index_srocc_mean": round(float(np.nanmean(study_arr[:, 1])), 4),
            "learned_srocc_mean": round(float(np.nanmean(study_arr[:, 2])), 4),
            "model_right_way": int(np.sum(study_arr[:, 0] > 0)),
            "learned_right_way": int(np.sum(study_arr[:, 2] > 0)),
            "noise_index_right_way": int(np.sum(study_arr[:, 1] > 0)),
            "slices": len(study),
        },
    }


def markdown(result: dict) -> str:
    p, d = result["protocol"], result["denoising_study"]
    lines = [f"LDCTIQAC protocol re-created on {result['slices']} real abdominal slices ({result['split']} split):",
             "", "| version (sorted) | " + " | ".join(str(i + 1) for i in range(10)) + " |",
             "|---|" + "---:|" * 10]
    for name, key in (("readers (LDCTIQAC test set)", "public_sorted_means"), ("labels (the rule)", "label_sorted_means"),
                      ("verdict score", "model_sorted_means"), ("learned score alone", "learned_sorted_means")):
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in p[key]) + " |")
    for source, values in p["model_sorted_means_by_source"].items():
        lines.append(f"| verdict score, {source} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    lines += ["", "| against the labels | PLCC | SROCC | KROCC | overall |", "|---|---:|---:|---:|---:|"]
    for name, key in (("verdict score (learned, capped by the noise bound)", "model"), ("learned score alone", "learned"),
                      ("global noise index", "noise_index")):
        f = p[key]
        lines.append(f"| {name} | {f['plcc']:.3f} | {f['srocc']:.3f} | {f['krocc']:.3f} | **{f['overall']:.3f}** |")
    lines += ["", f"Denoising study ({d['slices']} slices x 14 versions): per-slice Spearman against the labels, "
              f"verdict score {d['model_srocc_mean']:.3f} ({d['model_right_way']} of {d['slices']} the right way), learned "
              f"score alone {d['learned_srocc_mean']:.3f} ({d['learned_right_way']} of {d['slices']}), global noise "
              f"index {d['noise_index_srocc_mean']:.3f} ({d['noise_index_right_way']} of {d['slices']})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args.model, args.split, progress=lambda name: print(f"  {name}", file=sys.stderr, flush=True))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
