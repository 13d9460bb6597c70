"""ONNX export of a quality model, with its preprocessing contract and card inside."""

from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tfkt_edge.errors import ExportError
from tfkt_edge.export.calibration import real_ct_slices
from tfkt_edge.export.tensorrt_ops import OperatorReport, check_operators
from tfkt_edge.model.model_file import CARD_KEY, INPUT_NAME, MODEL_KEY, OUTPUT_NAME
from tfkt_edge.model.preprocess import METADATA_KEY, PreprocessContract

OPSET = 18


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    nodes_exported: int
    nodes_simplified: int
    operators: OperatorReport


def export_onnx(model: nn.Module, name: str, contract: PreprocessContract, card: dict, output: Path) -> OnnxExport:
    """Export with a dynamic batch dimension and fixed 1 x size x size images.

    The graph is constant-folded and simplified (onnxslim: the position-bias
    MLPs, shape arithmetic and BatchNorms collapse into constants), the
    contract and model card are written to its metadata_props, and the file is
    checked with onnx.checker and against TensorRT's operator table.
    """
    model = model.eval()
    example = torch.rand(2, 1, contract.size, contract.size)
    output.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(output), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    exported = onnx.load(str(output))
    graph = finish(exported, output, contract, card, name)
    return OnnxExport(output, len(exported.graph.node), len(graph.graph.node), check_operators(graph))


def finish(exported: onnx.ModelProto, output: Path, contract: PreprocessContract, card: dict, name: str) -> onnx.ModelProto:
    """Fold and simplify an exported graph (onnxslim), write the contract, card and name into its metadata,
    check it (onnx.checker, full) and save it to ``output``; return it."""
    import onnxslim

    graph = onnxslim.slim(exported)
    meta = {METADATA_KEY: contract.to_json(), CARD_KEY: json.dumps(card, sort_keys=True), MODEL_KEY: name}
    del graph.metadata_props[:]
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(output))
    return graph


def max_score_difference(model: nn.Module, onnx_path: Path, images: np.ndarray) -> float:
    """Largest |torch - onnxruntime| score over a batch of preprocessed images (N x S x S)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = images.astype(np.float32)[:, None]
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(batch)).numpy()
    actual = session.run(None, {INPUT_NAME: batch})[0]
    return float(np.max(np.abs(reference - actual)))


PARITY_LIMIT = 1e-3


def label_note(config: dict) -> str:
    """What the scores a checkpoint learned mean, from the data it was trained on."""
    dataset = config.get("dataset", "")
    if dataset == "ldctiqac":
        return "LDCTIQAC 2023 radiologist scores (0-4, mean of the readers' scores)."
    if dataset == "ctsim":
        from tfkt_edge.train.ctnoise import LABEL_RULE

        return LABEL_RULE
    return f"Natural-image quality scores of {dataset!r} rescaled to 0-4 (docs/training.md); NOT CT radiologist scores."


def verdict_checks(card: dict, config: dict) -> dict:
    """The domain limits and noise figures a model file carries: those of its card where it has them, else
    measured on the real CT slices the built-in corpus trains on (dataset ctsim, with ../shared/realct
    present), else the runtime's physics defaults; "checks" says which."""
    from tfkt_edge.verdict.noise import NOISE_FORMAT

    noise = card.get("noise")
    if isinstance(card.get("domain"), dict) and isinstance(noise, dict) and noise.get("format") == NOISE_FORMAT:
        return {"checks": card.get("checks", "measured on the training slices (card)")}
    from tfkt_edge.train.realct import realct_folder

    if config.get("dataset") == "ctsim" and realct_folder() is not None:
        from tfkt_edge.train.ctnoise import D_HALF, SHAPE
        from tfkt_edge.train.validate import measure_domain, measure_noise
        from tfkt_edge.verdict.bound import ScoreBound

        return {"domain": json.loads(measure_domain().to_json()), "noise": measure_noise().to_dict(),
                "score_bound": ScoreBound(D_HALF, SHAPE).to_dict(),
                "checks": "domain limits and noise figures measured on the training split's real CT slices at export; "
                          "score bound: the label rule the model was trained on"}
    return {"checks": "physics defaults: the model was not trained on the built-in corpus's real slices (or they "
                      "were not present at export), so the runtime holds it to the default domain and noise figures"}


def export_checkpoint(checkpoint: Path, output: Path) -> tuple[OnnxExport, float]:
    """Export a training checkpoint (model.pt) to ONNX and verify it against torch on real CT.

    Returns:
        (the export with its operator report, the largest |torch - ONNX Runtime| score difference).

    Raises:
        ExportError: unreadable checkpoint, an operator TensorRT cannot parse, or
            parity worse than PARITY_LIMIT.
    """
    from tfkt_edge.model.checkpoint import load_checkpoint

    try:
        model, saved = load_checkpoint(checkpoint)
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
        raise ExportError(f"{checkpoint}: not a tfkt-edge training checkpoint ({type(exc).__name__})") from None
    contract = PreprocessContract.from_json(saved["preprocess"])
    card = dict(saved.get("card") or {})
    card.setdefault("name", saved["model"])
    card.setdefault("training", saved.get("config", {}))
    card.setdefault("labels", label_note(saved.get("config", {})))
    card["source_checkpoint"] = checkpoint.name
    card.update(verdict_checks(card, saved.get("config", {})))
    exported = export_onnx(model, saved["model"], contract, card, output)
    if not exported.operators.ok:
        raise ExportError(f"{output}: TensorRT's ONNX parser would refuse it: {'; '.join(exported.operators.problems[:3])}")
    difference = max_score_difference(model, output, real_ct_slices(contract))
    if difference > PARITY_LIMIT:
        raise ExportError(f"{output}: ONNX Runtime differs from torch by {difference:.2e} on real CT (limit {PARITY_LIMIT:g})")
    return exported, difference
