"""ONNX export of a quality model, with its preprocessing contract and card inside."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tfkt_edge.model_file import CARD_KEY, INPUT_NAME, MODEL_KEY, OUTPUT_NAME
from tfkt_edge.preprocess import METADATA_KEY, PreprocessContract

OPSET = 18


def export_onnx(model: nn.Module, name: str, contract: PreprocessContract, card: dict, output: Path) -> Path:
    """Export with a dynamic batch dimension and fixed 1 x size x size images.

    The contract and model card are written to the graph's metadata_props, and
    the file is checked with onnx.checker before it is returned.
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
    graph = onnx.load(str(output))
    meta = {METADATA_KEY: contract.to_json(), CARD_KEY: json.dumps(card, sort_keys=True), MODEL_KEY: name}
    del graph.metadata_props[:]
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(output))
    return output


def max_score_difference(model: nn.Module, onnx_path: Path, images: np.ndarray) -> float:
    """Largest |torch - onnxruntime| score over a batch of preprocessed images (N x S x S)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = images.astype(np.float32)[:, None]
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(batch)).numpy()
    actual = session.run(None, {INPUT_NAME: batch})[0]
    return float(np.max(np.abs(reference - actual)))
