"""What precision a built engine's layers really run in, read from TensorRT's engine inspector.

A builder that asks for FP16 and silently gets FP32 (TensorRT 11 ignores the
old flag; unsupported tactics fall back) must not report FP16. The inspector's
JSON (ProfilingVerbosity.DETAILED) names each layer's tensor formats, such as
"Row major linear FP16 format", "Half" or "Float".
"""

from __future__ import annotations

from dataclasses import dataclass

# Layers that move or reinterpret data rather than compute: their format says nothing about precision.
DATA_MOVEMENT = frozenset({"Reformat", "NoOp", "Shuffle", "Constant", "Cast", "Identity", "Slice", "Concatenation"})
FP16_SHARE = 0.5  # an engine reported as FP16 runs at least this share of its compute layers in FP16


def tensor_precision(fmt: str) -> str:
    """'fp16', 'fp32', 'bf16', 'int8', 'fp8' or 'unknown' from an inspector "Format/Datatype" string."""
    text = fmt.lower()
    for needle, name in (("fp16", "fp16"), ("half", "fp16"), ("bf16", "bf16"), ("fp32", "fp32"), ("float", "fp32"),
                         ("int8", "int8"), ("fp8", "fp8")):
        if needle in text:
            return name
    return "unknown"


@dataclass(frozen=True)
class PrecisionSummary:
    counts: dict[str, int]  # compute layers by output precision
    layers: int

    @property
    def fp16_share(self) -> float:
        known = sum(v for k, v in self.counts.items() if k != "unknown")
        return self.counts.get("fp16", 0) / known if known else 0.0

    @property
    def is_fp16(self) -> bool:
        return self.fp16_share >= FP16_SHARE


def summarize(info: dict) -> PrecisionSummary:
    """Count compute layers by the precision of their first output.

    Raises:
        ValueError: the inspector gave names only (engine not built with DETAILED verbosity).
    """
    layers = info.get("Layers", [])
    if layers and not isinstance(layers[0], dict):
        raise ValueError("engine information lists layer names only: build with ProfilingVerbosity.DETAILED")
    counts: dict[str, int] = {}
    compute = 0
    for layer in layers:
        if layer.get("LayerType") in DATA_MOVEMENT or not layer.get("Outputs"):
            continue
        compute += 1
        precision = tensor_precision(str(layer["Outputs"][0].get("Format/Datatype", "")))
        counts[precision] = counts.get(precision, 0) + 1
    return PrecisionSummary(dict(sorted(counts.items())), compute)
