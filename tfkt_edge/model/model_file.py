"""The shipped model file and what a model file must carry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tfkt_edge.errors import ModelError
from tfkt_edge.model.preprocess import METADATA_KEY, PreprocessContract
from tfkt_edge.verdict.bound import ScoreBound, bound_from_card
from tfkt_edge.verdict.domain import DEFAULT_DOMAIN, POOL, Domain
from tfkt_edge.verdict.noise import NoiseLimits, limits_from_card

ASSETS = Path(__file__).parents[1] / "assets"  # tfkt_edge/assets: the shipped model and its card
DEFAULT_MODEL = ASSETS / "tfkt_edge_s.onnx"  # image input: TensorRT, INT8, Triton on a GPU, the reference
# The same weights with the window and the statistics in the graph (export/in_graph.py): the CPU default.
STORED_MODEL = ASSETS / "tfkt_edge_s_stored.onnx"
INPUT_NAME = "image"
OUTPUT_NAME = "score"
# A model exported with its preprocessing and statistics in the graph (export/in_graph.py) takes the stored
# pixels and each slice's slope and intercept, and returns the statistics beside
# the score, in this order (NaN: none).
STORED_INPUTS = ("stored", "rescale")
STATS_NAME = "stats"
STATS_OUTPUT = ("noise_hu", "noise_texture", "body_fraction", "tissue_fraction", "structure_hu", "water_diameter_px")
CARD_KEY = "tfkt_edge.card"
MODEL_KEY = "tfkt_edge.model"


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    contract: PreprocessContract
    card: dict

    @cached_property  # read per series and per decoding job: the card is parsed once
    def domain(self) -> Domain:
        """The validated domain recorded in the card; the default domain for a model file that records none
        (header words, routine widths, the default image-statistics limits), which `checks` names."""
        data = self.card.get("domain")
        return Domain.from_dict(data) if isinstance(data, dict) else DEFAULT_DOMAIN

    @property
    def checks(self) -> str:
        """Which domain and noise figures this model is held to: its card's or the physics defaults."""
        noise, domain = self.noise_limits.source, "model card" if isinstance(self.card.get("domain"), dict) else "physics defaults"
        return f"domain: {domain}; noise: {noise}; score bound: {self.score_bound.source}"

    @property
    def held_to_defaults(self) -> bool:
        """True for a model file without domain limits or noise figures of its own (a warning says so)."""
        return self.noise_limits.source == "physics defaults" or not isinstance(self.card.get("domain"), dict)

    @property
    def stats_pool(self) -> int:
        """The pooling of the per-slice image statistics that this model's domain limits expect."""
        domain = self.domain
        return domain.pool if domain is not None else POOL

    def __post_init__(self) -> None:
        _ = self.noise_limits, self.score_bound  # a malformed card fails when the model is opened, not at the first verdict

    @cached_property
    def score_bound(self) -> ScoreBound:
        """The noise bound on the score (`tfkt_edge.verdict.bound`) recorded in the card, or the label rule's own
        constants for a model file that records none (the output names which applied: `ScoreBound.source`)."""
        data = self.card.get("score_bound") if isinstance(self.card, dict) else None
        try:
            return bound_from_card(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.path}: the card's score bound is malformed ({type(exc).__name__}: {exc})") from None

    @cached_property
    def noise_limits(self) -> NoiseLimits:
        """The noise check's figures recorded in the card, or the physics defaults for a model file that
        records none (the output names which applied: `NoiseLimits.source`)."""
        data = self.card.get("noise") if isinstance(self.card, dict) else None
        try:
            return limits_from_card(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{self.path}: the card's noise figures are malformed ({type(exc).__name__}: {exc})") from None

    @property
    def identity(self) -> str:
        """Name and version: what a baseline file is calibrated for."""
        return f"{self.name} {self.card.get('version', '')}".strip()

    def summary(self) -> dict:
        return {"name": self.name, "path": str(self.path), "preprocess": json.loads(self.contract.to_json()),
                "labels": self.card.get("labels", ""), "version": self.card.get("version", ""), "checks": self.checks}


def read_metadata(path: Path, metadata: dict[str, str]) -> ModelInfo:
    """Validate the metadata of an ONNX model; raise ModelError naming what is missing."""
    if METADATA_KEY not in metadata:
        raise ModelError(f"{path} carries no preprocessing contract ({METADATA_KEY} in metadata_props); export it with tfkt-edge")
    try:
        contract = PreprocessContract.from_json(metadata[METADATA_KEY])
        card = json.loads(metadata.get(CARD_KEY, "{}"))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path} has an invalid preprocessing contract: {exc}") from None
    return ModelInfo(path, metadata.get(MODEL_KEY, path.stem), contract, card)
