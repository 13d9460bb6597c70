"""FP16 accuracy on real CT: GPU backends against the FP32 reference (ONNX Runtime on the CPU).

    python benchmarks/fp16_parity.py [--set parity_hu.npz] [--engine model.engine] [--out benchmarks/results]
    python benchmarks/fp16_parity.py --make-set parity_hu.npz

The set is real clinical CT: the slices inside pydicom and pydicom-data and
the bundled example, each also at reduced dose and with sparse views through
the sinogram simulator, so the scores span the 0-4 scale and ranking can be
checked. ``--make-set`` writes it as HU arrays (needs pydicom-data and
scikit-image); without ``--set`` it is built on the fly. Every backend scores
the same preprocessed slices; each is compared with ONNX Runtime FP32 and
passes when max |difference| <= 0.02 and SROCC >= 0.999. Backends missing
here (no CUDA GPU, no TensorRT) are reported as skipped with the reason.
Runs as is wherever a GPU is; exit code 1 when any backend that ran fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from tfkt_edge.backends import create_backend
from tfkt_edge.bench.benchmark import machine as shared_machine
from tfkt_edge.errors import TfktEdgeError
from tfkt_edge.evaluation.metrics import srocc
from tfkt_edge.model.preprocess import preprocess

MAX_DIFFERENCE, MIN_SROCC = 0.02, 0.999
LADDER = ((1.0, 360), (0.5, 360), (0.25, 360), (0.1, 360), (0.05, 360), (0.25, 90))


def make_set() -> tuple[np.ndarray, list[str]]:
    """HU slices (N x 512 x 512, int16) and their names: real slices and their dose ladders."""
    from tfkt_edge.dicom import load_hu, scan
    from tfkt_edge.examples import EXAMPLES
    from tfkt_edge.train.ctsim import Degradation, SliceSimulator
    from tfkt_edge.train.sources import real_ct_slices

    sources = dict(real_ct_slices())
    sources["example-abdomen"] = EXAMPLES / "clinical" / "abdomen.dcm"
    rng = np.random.default_rng(0)
    images, names = [], []
    for name, path in sources.items():
        hu = load_hu(scan([path]).series[0].slices[0])
        if hu.shape != (512, 512):
            continue  # the ladder needs full-size slices; CT_small (128 x 128) is scored via the example set
        simulator = SliceSimulator(hu)
        for dose, views in LADDER:
            degraded, _ = simulator.degrade(Degradation(dose, views), rng)
            images.append(np.clip(np.round(degraded), -32768, 32767).astype(np.int16))
            names.append(f"{name} dose {dose:g} views {views}")
    return np.stack(images), names


def compare(reference: np.ndarray, scores: np.ndarray) -> dict:
    difference = np.abs(scores - reference)
    rho = srocc(reference, scores)
    return {"max_abs_diff": round(float(difference.max()), 5), "mean_abs_diff": round(float(difference.mean()), 5),
            "srocc": round(rho, 5), "passed": bool(difference.max() <= MAX_DIFFERENCE and rho >= MIN_SROCC)}


def candidates(engine: Path | None) -> list[tuple[str, dict]]:
    """(label, create_backend arguments) of every GPU configuration to try."""
    rows = [("torch cuda fp32 (CUDA graphs)", {"name": "torch", "precision": "fp32"}),
            ("torch cuda fp16 (CUDA graphs)", {"name": "torch", "precision": "fp16"})]
    if engine is not None:
        rows.append((f"tensorrt fp16 ({engine.name})", {"name": "tensorrt", "model": engine}))
    return rows


def open_backend(name: str, model: Path | None = None, precision: str | None = None):
    if name == "torch":
        import torch

        from tfkt_edge.backends.pytorch import TorchBackend

        if not torch.cuda.is_available():
            raise TfktEdgeError("no CUDA GPU visible to PyTorch")
        return TorchBackend(model, device="cuda", precision=precision)
    return create_backend(name, model)


def machine() -> dict:
    """The shared machine description, with the CUDA version torch was built for."""
    info = shared_machine()
    try:
        import torch

        if torch.cuda.is_available():
            info["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", type=Path, help="HU set written by --make-set (default: build it now)")
    parser.add_argument("--make-set", type=Path, metavar="FILE", help="write the HU set to FILE and exit")
    parser.add_argument("--engine", type=Path, help="also check this TensorRT engine")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.make_set:
        hu, names = make_set()
        np.savez_compressed(args.make_set, hu=hu, names=np.array(names))
        print(f"wrote {len(names)} slices to {args.make_set}")
        return 0
    if args.set:
        data = np.load(args.set)
        hu, names = data["hu"], [str(n) for n in data["names"]]
    else:
        hu, names = make_set()

    reference_backend = create_backend("onnxruntime")
    contract = reference_backend.model.contract
    batch = np.stack([preprocess(h.astype(np.float32), contract) for h in hu])[:, None]
    reference = reference_backend.infer(batch)
    result = {"slices": len(names), "reference": "onnxruntime fp32 (CPU), shipped model",
              "reference_scores": {"min": round(float(reference.min()), 3), "max": round(float(reference.max()), 3)},
              "limits": {"max_abs_diff": MAX_DIFFERENCE, "min_srocc": MIN_SROCC}, "machine": machine(), "rows": [],
              "command": "python benchmarks/fp16_parity.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"{len(names)} real CT slices; reference scores {reference.min():.2f}-{reference.max():.2f}")
    failed = False
    for label, spec in candidates(args.engine):
        try:
            backend = open_backend(spec["name"], spec.get("model"), spec.get("precision"))
        except (TfktEdgeError, ImportError) as exc:
            result["rows"].append({"backend": label, "skipped": str(exc)})
            print(f"{label:40s} skipped: {exc}")
            continue
        try:
            row = {"backend": label, **compare(reference, backend.infer(batch))}
        finally:
            backend.close()
        failed |= not row["passed"]
        result["rows"].append(row)
        print(f"{label:40s} max |diff| {row['max_abs_diff']:.5f}  mean {row['mean_abs_diff']:.5f}  "
              f"SROCC {row['srocc']:.5f}  {'PASS' if row['passed'] else 'FAIL'}")
    if "gpu" in result["machine"]:
        args.out.mkdir(parents=True, exist_ok=True)
        slug = result["machine"]["gpu"].lower().replace("nvidia", "").strip().replace(" ", "_")
        target = args.out / f"fp16_parity_{slug}.json"
        target.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
