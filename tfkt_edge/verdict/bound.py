"""The noise bound: no slice scores better than the noise a reader would see in it allows.

Readers judge the absolute noise they see in the window they read with (FIELD; docs/simulator.md), and the
training labels follow that rule: ``label = 4 / (1 + (D / d_half)^shape)``, with D the noise in W350-equivalent
HU. The learned score is an estimate of that label and can be wrong in both directions; measured on real
slices with the LDCTIQAC protocol re-created, its worst error is reading a visibly noisy image as good
(docs/heldout_real.md: 40 HU of noise, label 2.3, learned score 3.4). The soft-tissue noise of each slice is
measured anyway (`tfkt_edge.verdict.noise.measure`), so the score a verdict uses is

    score = min(learned score, bound(noise))

where the bound is the label rule applied to the measured noise. The model can still mark an image down for
what noise does not show (streaks, over-smoothing, artefacts); it can no longer mark a noisy image up.

The window is the most forgiving one readers use for the header's kernel class, because a bound must not
call a routine image poor: W350 for soft kernels and for a kernel the header does not name (what LDCTIQAC's
readers used), and a bone window (W2000, `PreprocessContract.sharp_view_head`) for sharp kernels, however the
image is read. Added noise only raises the measured noise, so it only lowers the bound; no header word lifts it
except a sharp kernel, which already loosens the noise ceiling in the same proportion.

The constants travel in the model card ("score_bound"); a model file without them is held to the label rule's
own constants (``PHYSICS_DEFAULTS``), and the output names which applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tfkt_edge.model.preprocess import PreprocessContract

BOUND_FORMAT = 1


@dataclass(frozen=True)
class ScoreBound:
    """The label rule's constants, and the scale from the measured noise index to the rule's noise."""

    d_half: float  # W350-equivalent HU of noise that readers score 2.0
    shape: float
    noise_scale: float = 1.0  # rule noise per HU of `noise.measure` (1.0: the estimator's own HU)
    source: str = "model card"  # or "physics defaults": what the output names

    def to_dict(self) -> dict[str, Any]:
        return {"format": BOUND_FORMAT, "d_half": self.d_half, "shape": self.shape, "noise_scale": self.noise_scale}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreBound:
        """Read the card's "score_bound" section; ValueError unless every figure is a positive number in range."""
        bound = cls(float(data["d_half"]), float(data["shape"]), float(data.get("noise_scale", 1.0)))
        if not (10.0 <= bound.d_half <= 200.0 and 1.0 <= bound.shape <= 10.0 and 0.5 <= bound.noise_scale <= 2.0):
            raise ValueError(f"d_half {bound.d_half:g} HU, shape {bound.shape:g} or noise_scale {bound.noise_scale:g} "
                             "out of range (10-200 HU, 1-10, 0.5-2)")
        return bound

    def view(self, kernel_class: str, contract: PreprocessContract) -> float:
        """How much smaller the noise looks in the most forgiving window for this kernel class than at W350."""
        return min(1.0, contract.sharp_view_head) if kernel_class == "sharp" else 1.0

    def of_noise(self, noise_hu: float | None, kernel_class: str, contract: PreprocessContract) -> float | None:
        """The best score a slice with this soft-tissue noise can have; None where no noise was measured."""
        if noise_hu is None or not np.isfinite(noise_hu):
            return None
        seen = max(0.0, noise_hu) * self.noise_scale * self.view(kernel_class, contract)
        return float(4.0 / (1.0 + (seen / self.d_half) ** self.shape))


# The label rule's constants (train/ctnoise.py: D_HALF, SHAPE; docs/simulator.md), for a model file without a
# "score_bound" section.
PHYSICS_DEFAULTS = ScoreBound(43.66, 4.475, 1.0, "physics defaults")


def bound_from_card(data: object) -> ScoreBound:
    """The card's bound, or the physics defaults where it carries none (ValueError: malformed)."""
    if data is None:
        return PHYSICS_DEFAULTS
    if not isinstance(data, dict):
        raise ValueError(f"a score_bound section must be an object, not {type(data).__name__}")
    return ScoreBound.from_dict(data)


def bounded(learned: float, bound: float | None) -> float:
    """The score a verdict uses: the learned score, capped by the noise bound where there is one."""
    return learned if bound is None else min(learned, bound)


def capped(bound: ScoreBound, learned: float, noise_hu: float | None, kernel_class: str,
           contract: PreprocessContract) -> float:
    """`bounded` with the bound of this noise (None or NaN: no bound) for images scored without their slice's
    header (evaluation folders, the protocol re-creation)."""
    return bounded(learned, bound.of_noise(noise_hu, kernel_class, contract))
