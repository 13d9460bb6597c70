"""An INT8 variant of an exported ONNX model for the CPU: ONNX Runtime static quantization, QDQ format.

An option, not the default: on the 2-core CPU it scores about 1.3x faster than FP32, but
its scores drift from FP32 by up to about 0.9 on held-out dose ladders (SROCC about 0.99,
below the 0.995 a default must reach): the input's uint8 activations have 256 levels over
the 1400 HU window, about 5.5 HU a level, which is the scale of the noise the model
measures. Keeping the stem convolution in FP32 does not help the scores and gives up the
speed. Figures: benchmarks/results/int8_cpu.json (benchmarks/int8_cpu.py).

Weights per channel (int8), activations per tensor (uint8), ranges calibrated
on preprocessed real CT: the clinical training slices of the shared `realct`
folder where it is present, the bundled examples and the pydicom CT slices,
each also as a simulated low-dose copy, so the calibrated ranges cover both
ends of the score scale. The contract and card travel in the metadata as in
the FP32 file; the card records the quantization. Nothing here needs torch.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tfkt_edge.errors import ExportError
from tfkt_edge.model.model_file import CARD_KEY, INPUT_NAME
from tfkt_edge.model.preprocess import PreprocessContract

CALIBRATION_SLICES = 64


def calibration_images(contract: PreprocessContract, limit: int = CALIBRATION_SLICES, seed: int = 0) -> np.ndarray:
    """(N, 1, S, S) preprocessed real CT: realct training slices (if present) and the packaged slices,
    each as acquired and with noise for a quarter and a tenth of the dose (the image's own noise, scaled)."""
    from tfkt_edge.dicom import load_hu, scan
    from tfkt_edge.examples import EXAMPLES
    from tfkt_edge.model.preprocess import preprocess

    paths: list[Path] = [EXAMPLES / "clinical"]
    try:
        from tfkt_edge.train.realct import training_slices

        paths += [s.path for s in training_slices() if s.split == "train"]
    except ImportError:  # the training package is absent from this installation: the examples only
        pass
    rng = np.random.default_rng(seed)
    refs = [s for series in scan(paths).series for s in series.slices][: max(1, limit // 3)]
    images = []
    for ref in refs:
        hu = load_hu(ref).astype(np.float32)
        local = hu[hu.shape[0] // 2 - 32: hu.shape[0] // 2 + 32, hu.shape[1] // 2 - 32: hu.shape[1] // 2 + 32]
        sigma = float(np.clip(local.std(), 5.0, 60.0))
        for dose in (1.0, 0.25, 0.1):
            noisy = hu if dose == 1.0 else hu + rng.normal(0.0, sigma * np.sqrt(1 / dose - 1), hu.shape).astype(np.float32)
            images.append(preprocess(noisy, contract))
    if not images:
        raise ExportError("no real CT slices found for INT8 calibration")
    return np.stack(images)[:limit, None].astype(np.float32)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol: one batch of 4 slices per call, then None."""

    def __init__(self, images: np.ndarray, batch: int = 4):
        self._batches: Iterator[np.ndarray] = iter([images[i:i + batch] for i in range(0, len(images), batch)])

    def get_next(self) -> dict | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(fp32_model: Path, output: Path, images: np.ndarray, op_types: list[str] | None = None) -> Path:
    """Write the INT8 QDQ model of ``fp32_model`` to ``output``, calibrated on ``images``, metadata carried over;
    ``op_types``: the operator types to quantize (default: every one the quantizer takes)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(fp32_model))
    metadata = {p.key: p.value for p in source.metadata_props}
    if CARD_KEY not in metadata:
        raise ExportError(f"{fp32_model} carries no model card: export it with tfkt-edge export onnx first")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=True)
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # per-node chatter from the quantizer
        quantize_static(str(prepared), str(output), _Reader(images), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=op_types)
    quantized = onnx.load(str(output))
    card = json.loads(metadata[CARD_KEY])
    card["precision"] = {"weights": "int8 per channel", "activations": "uint8 per tensor", "format": "QDQ",
                         "calibration": f"{len(images)} preprocessed real CT slices (as acquired, 25% and 10% dose)",
                         "from": fp32_model.name}
    metadata[CARD_KEY] = json.dumps(card)
    del quantized.metadata_props[:]
    for key, value in metadata.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.save(quantized, str(output))
    return output
