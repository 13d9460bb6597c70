"""What the model card states about real scans: the validated domain and the held-out series figures.

    python -m tfkt_edge.train.validate [--model tfkt_edge/assets/tfkt_edge_s.onnx] [--ladders /tmp/ladders]

* `measure_domain`: the limits of `tfkt_edge.domain.Domain`, measured on the
  training slices (undegraded, native kernel) with margins.
* `measure_noise`: the noise check's ceilings (`tfkt_edge.noise.NoiseLimits`),
  twice the median routine noise of the training slices per region.
* `series_figures`: dose ladders of every held-out real series (`ladders.py`),
  scored through `tfkt-edge evaluate --series`'s own code: false-alert and miss
  rates per source, the undegraded scores, and the within-slice ladder SROCC,
  plus each held-out slice's scores down its dose ladder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.domain import Domain, image_stats, kernel_class
from tfkt_edge.noise import NoiseLimits, at_reference, measure, region_of
from tfkt_edge.preprocess import LDCTIQAC, preprocess
from tfkt_edge.train.realct import HELDOUT_GROUPS, training_slices


def measure_domain(split: str = "train") -> Domain:
    """Limits from the clinical slices of ``split``: image statistics with margins, header ranges as trained."""
    stats, thickness, fov, kernels, vendors = [], [], [], set(), set()
    for s in training_slices():
        if s.split != split:
            continue
        found = scan([s.path])
        if not found.series:
            continue
        ref = found.series[0].slices[0]
        stats.append(image_stats(preprocess(load_hu(ref), LDCTIQAC)))
        if ref.thickness is not None:
            thickness.append(ref.thickness)
        if ref.pixel_spacing:
            fov.append(ref.pixel_spacing * max(ref.rows, ref.columns))
        kernels.add(s.kernel or "(none)")
        vendors.add(s.manufacturer or "(unrecorded)")
    body = min(x.body_fraction for x in stats)
    tissue = min(x.tissue_fraction for x in stats)
    structure = min(x.structure_hu for x in stats)
    return Domain(
        min_body_fraction=round(0.6 * body, 3), min_tissue_fraction=round(0.5 * tissue, 3),
        min_structure_hu=round(0.75 * structure, 1),
        thickness_mm=(min(thickness), max(thickness)), fov_mm=(round(0.75 * min(fov)), round(1.25 * max(fov))),
        kernel_classes=("soft", "sharp", "unknown"),
        validated=(f"trained on {len(stats)} real clinical slices (vendors: {', '.join(sorted(vendors))}; kernels: "
                   f"{', '.join(sorted(kernels))}); held out by patient group: {', '.join(HELDOUT_GROUPS)}"),
    )


def measure_noise(split: str = "train") -> NoiseLimits:
    """Ceilings from every clinical slice of ``split``: twice the median routine noise (at 3 mm) per region.

    The region is the one the image is known to show (the manifest's body part), so a training head
    slice whose header names no region still calibrates the head ceiling; at run time the header decides.
    The texture line lies halfway between the sharpest-textured soft-kernel slice and the
    softest-textured sharp-kernel one."""
    by_region: dict[str, list[float]] = defaultdict(list)
    soft, sharp = [], []
    for s in training_slices():
        if s.split != split:
            continue
        for series in scan([s.path]).series:
            for ref in series.slices:
                noise, texture = measure(preprocess(load_hu(ref), LDCTIQAC))
                if noise is None or texture is None:
                    continue
                if kernel_class(s.kernel) == "sharp":
                    sharp.append(texture)
                    continue
                soft.append(texture)
                by_region[region_of(s.body_part)].append(at_reference(noise, ref.thickness))
    routine = {region: round(float(np.median(values)), 2) for region, values in sorted(by_region.items())}
    return NoiseLimits({region: round(2.0 * value, 2) for region, value in routine.items()}, routine,
                       round((min(soft) + max(sharp)) / 2.0, 3) if sharp else round(min(soft), 3),
                       {region: len(values) for region, values in sorted(by_region.items())})


def series_figures(model: Path, ladders: Path | None = None) -> dict:
    """Held-out series figures of ``model`` (ONNX Runtime), from ladders written to ``ladders`` (a temp dir if None)."""
    from tfkt_edge.backends import create_backend
    from tfkt_edge.evaluation.series import evaluate_series, summarise
    from tfkt_edge.train.ladders import write_ladders

    with tempfile.TemporaryDirectory() as scratch:
        folder = ladders or Path(scratch)
        if not (folder / "series.csv").exists():
            write_ladders(folder, progress=lambda line: print(f"  ladder {line}", flush=True))
        backend = create_backend("onnxruntime", model)
        try:
            outcomes = evaluate_series(folder, backend)
        finally:
            backend.close()
    table: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for o in outcomes:
        table[o.ladder][f"{o.dose:g}"] = [round(s, 3) for s in o.slice_scores]
    # Plain dicts only: the card travels inside the torch checkpoint, which loads with weights_only=True.
    return {"summary": summarise(outcomes), "dose_ladders": {ladder: dict(rows) for ladder, rows in table.items()}}


VALIDATED = [
    "Held out by patient group, undegraded and with simulated dose ladders (docs/heldout_real.md): Siemens Biograph40 "
    "mCT Br38f\\3 (a vendor never trained on; one 20-slice upper-abdomen series), Toshiba Aquilion ONE FC17/FC07 with "
    "AIDR 3D (axial, coronal and sagittal), GE LightSpeed VCT STANDARD with ASiR (chest; abdomen-pelvis; axial and "
    "reformats), GE Optima CT520 lumbar spine, Toshiba FC52 liver dome (a sharp kernel), Hitachi skull base.",
    "Real phantom scans are reported outside the domain, never judged: GE water cylinder (daily QA), Siemens NAEOTOM "
    "Alpha uniform and contrast-insert sections, Siemens hand phantom (tests/test_domain.py).",
]
NOT_VALIDATED = [
    "Radiologist agreement: no radiologist-scored images were available; the labels are dose-relative physics.",
    "Real low-dose acquisitions: dose reduction was simulated, never acquired.",
    "Kernels and scanners never seen: GE BONE/LUNG, Siemens sharp body kernels (B60 and up), Philips sharp kernels, "
    "Canon lung kernels other than the FC52/FC80 singletons; photon-counting clinical images; dual-energy maps.",
    "Populations and protocols never seen: paediatric, head CT beyond three slices, CT angiography and perfusion, "
    "metal implants, motion, truncation.",
    "Series-level behaviour beyond the held-out series above: most held-out series are single images.",
    "The noise check's ceilings beyond the slices that set them: the body ceiling is twice the median of 47 routine "
    "training slices (the noisiest of them sits at about 0.92 of it), the head ceiling twice that of a single head "
    "slice. Obese patients scanned at the tube's limit, and head protocols noisier than that slice, may exceed them; "
    "`--no-noise-check` turns the check off.",
]


def markdown_report(card: dict) -> str:
    """docs/heldout_real.md: the held-out real series table and every held-out slice's dose ladder."""
    from tfkt_edge.evaluation.series import markdown

    figures = card["heldout_series"]
    ladders = figures["dose_ladders"]
    doses = sorted({float(d) for rows in ladders.values() for d in rows}, reverse=True)
    lines = [f"# Held-out real CT: {card['name']} {card['version']}", "",
             "Written by `python -m tfkt_edge.train.make_default` from the model card (`heldout_series`). "
             "Held-out patient groups of `../shared/realct` and the pydicom skull base; each original series must "
             "pass, each simulated copy at 10% dose or less must alert (threshold 2.0, min-run 3; domain check and noise check on). "
             "Labels of the copies: 4 / (1 + (log2(1/dose) / 2.3)^2.5).", "", "## What is validated, and what is not", "",
             *[f"- Validated: {line}" for line in card.get("validation", {}).get("validated", [])],
             *[f"- Not validated: {line}" for line in card.get("validation", {}).get("not_validated", [])],
             "", "## Per source", "", markdown(figures["summary"]),
             "## Dose ladder of every held-out slice", "",
             "Score of each slice (one row per slice; a multi-slice series gives one row per slice) at each dose.", "",
             "| series | slice | " + " | ".join(f"{d:.0%}" for d in doses) + " |",
             "|---|---:|" + "---:|" * len(doses)]
    for ladder, rows in ladders.items():
        n = len(next(iter(rows.values())))
        for i in range(n):
            cells = [f"{rows[f'{d:g}'][i]:.2f}" if f"{d:g}" in rows and i < len(rows[f"{d:g}"]) else "-" for d in doses]
            lines.append(f"| {ladder} | {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(__file__).resolve().parents[1] / "tfkt_edge" / "assets" / "tfkt_edge_s.onnx")
    parser.add_argument("--ladders", type=Path, default=None, help="reuse (or write) the ladders here")
    parser.add_argument("--output", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    figures = {"domain": json.loads(measure_domain().to_json()), "heldout_series": series_figures(args.model, args.ladders)}
    text = json.dumps(figures, indent=1)
    if args.output:
        args.output.write_text(text + "\n")
    print(json.dumps(figures["heldout_series"]["summary"]["all"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
