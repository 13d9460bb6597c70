"""The noise check: a series far noisier than routine scans of its body region alerts.

The model judges an image as it looks, and it cannot know the routine dose of a
scan it has never seen: a tenth-dose copy of a very quiet image (a head, a
strong iterative reconstruction) looks like an ordinary routine image of a
noisier protocol. The noise itself is measurable, so the verdict also checks
it, in the units clinical noise monitoring uses (the global noise index of
Christianson et al. 2015: local standard deviations over soft tissue):

* **noise** of a slice: 8x8-pixel blocks of the model input whose mean lies in
  soft tissue (-150..200 HU); the median of the flatter half of their
  standard deviations, in HU. Measured on the 512x512 input every backend
  receives (about 0.6 ms a slice on one core), so training and runtime measure the same thing.
* **texture**: the same blocks' standard deviation after 2x2 averaging, over
  the original. Fine-grained sharp-kernel noise falls to about 0.4-0.5 of
  itself, the coarser noise of soft kernels and iterative reconstruction to
  0.6-0.9. Sharp kernels are diagnostic at 3-5x the noise of soft ones, so the
  check leaves sharp-textured series (or a sharp kernel named in the header)
  to the model alone.
* **series noise**: the median over its slices, scaled to a 3 mm slice
  (noise ~ 1/sqrt(thickness)), so thin routine reconstructions are not
  called noisy.

A series alerts when its noise exceeds its region's ceiling: twice the median
routine noise of the training slices of that region (head, when BodyPartExamined
names the head alone; body for every other region, a head-and-neck or sinus
protocol, and a header that names none), that is, less than about a
quarter of the typical routine dose. The ceilings travel in the model card
("noise"), measured by ``tfkt_edge.train.validate.measure_noise``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from tfkt_edge.preprocess import LDCTIQAC, PreprocessContract

BLOCK = 8
SOFT_HU = (-150.0, 200.0)
MIN_BLOCKS = 32  # fewer soft-tissue blocks (a lung-only or bone-only slice): no noise figure
REFERENCE_MM = 3.0
HEAD_WORDS = ("HEAD", "BRAIN", "SKULL")
# Regions named with the head that are not brain imaging: a neck or sinus protocol is noisier by design.
NOT_HEAD_WORDS = ("NECK", "SINUS", "FACE", "DENT", "ORBIT")


def block_sums(image: np.ndarray, block: int) -> np.ndarray:
    """Sums over non-overlapping block x block tiles (strided adds: 10x faster than a reshape-sum)."""
    n = min(image.shape) - min(image.shape) % block
    rows: np.ndarray = sum(image[k:n:block, :n] for k in range(block))  # type: ignore[assignment]
    return sum(rows[:, k::block] for k in range(block))  # type: ignore[return-value]


def _block_sd(image: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    count = block * block
    mean = block_sums(image, block) / count
    var = block_sums(image * image, block) / count - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0))


def measure(image: np.ndarray, contract: PreprocessContract = LDCTIQAC) -> tuple[float | None, float | None]:
    """(noise in HU, texture ratio) of one preprocessed slice; (None, None) without enough soft tissue."""
    span = contract.hu_max - contract.hu_min
    mean, sd = _block_sd(image, BLOCK)
    hu = contract.hu_min + mean * span
    soft = (hu > SOFT_HU[0]) & (hu < SOFT_HU[1])
    count = int(soft.sum())
    if count < MIN_BLOCKS:
        return None, None
    flat = np.argsort(np.where(soft, sd, np.inf), axis=None)[: count // 2]
    noise = float(np.median(sd.ravel()[flat]))
    if noise <= 0.0:
        return 0.0, None
    _, pooled_sd = _block_sd(block_sums(image, 2) / 4.0, BLOCK // 2)
    return noise * span, float(np.median(pooled_sd.ravel()[flat]) / noise)


def region_of(body_part: str) -> str:
    """'head' for a BodyPartExamined naming the head alone (not HEADNECK, not sinuses), else 'body' (also when
    the header names none): a wrong 'head' would hold a series to the much lower head ceiling."""
    text = body_part.upper()
    if any(word in text for word in NOT_HEAD_WORDS):
        return "body"
    return "head" if any(word in text for word in HEAD_WORDS) else "body"


def at_reference(noise: float, thickness: float | None) -> float:
    """Noise scaled to a REFERENCE_MM slice; as measured when the thickness is unknown (or not a thickness)."""
    if thickness is None or not usable_thickness(thickness):
        return noise
    return noise * float(np.sqrt(thickness / REFERENCE_MM))


def usable_thickness(thickness: float | None) -> bool:
    return thickness is not None and bool(np.isfinite(thickness)) and thickness > 0


@dataclass(frozen=True)
class NoiseLimits:
    """The ceilings (HU at 3 mm) per region, and the texture ratio at or below which noise is sharp-kernel."""

    ceiling_hu: dict[str, float]
    routine_hu: dict[str, float]  # median routine noise of the training slices, per region
    sharp_texture: float
    slices: dict[str, int]  # training slices per region

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NoiseLimits:
        """Read the card's "noise" section; ValueError unless every ceiling is a positive number with its routine."""
        limits = cls({str(k): float(v) for k, v in data["ceiling_hu"].items()},
                     {str(k): float(v) for k, v in data["routine_hu"].items()},
                     float(data["sharp_texture"]), {str(k): int(v) for k, v in data.get("slices", {}).items()})
        values = [*limits.ceiling_hu.values(), *limits.routine_hu.values(), limits.sharp_texture]
        if not all(np.isfinite(v) and v > 0 for v in values) or set(limits.ceiling_hu) - set(limits.routine_hu):
            raise ValueError("every ceiling needs a positive routine noise, and the texture line must be positive")
        return limits


def finite_median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are present and finite; None when there are none."""
    present = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(present)) if present else None


@dataclass(frozen=True)
class NoiseFinding:
    """A series' noise against its region's ceiling (HU at REFERENCE_MM when the thickness is known)."""

    noise_hu: float
    ceiling_hu: float
    routine_hu: float
    region: str
    scaled: bool  # False: thickness unknown, noise as measured
    basis: str = ""  # what the ceiling is twice of: the region's routine noise, or a protocol's accepted noise

    @property
    def above(self) -> bool:
        return self.noise_hu > self.ceiling_hu

    def for_protocol(self, accepted_hu: float, ceiling_hu: float) -> NoiseFinding:
        """The same measurement held to a calibrated protocol's ceiling (`tfkt_edge.baselines`)."""
        return replace(self, ceiling_hu=ceiling_hu, routine_hu=accepted_hu, basis="protocol")

    @property
    def reason(self) -> str:
        at = f"{self.noise_hu:.1f} HU at {REFERENCE_MM:g} mm" if self.scaled else f"{self.noise_hu:.1f} HU"
        of = (f"this protocol (twice its accepted {self.routine_hu:.1f} HU" if self.basis == "protocol" else
              f"{self.region} series (twice the routine {self.routine_hu:.1f} HU")
        return f"noise {at} above the {self.ceiling_hu:.1f} HU ceiling for {of}: under about a quarter of routine dose)"

    def to_dict(self) -> dict:
        return {"noise_hu": round(self.noise_hu, 2), "ceiling_hu": self.ceiling_hu, "region": self.region,
                "ceiling_of": self.basis or "region", "at_mm": REFERENCE_MM if self.scaled else None, "above": self.above}


def assess_noise(refs: Sequence, noises: Sequence[float | None], textures: Sequence[float | None],
                 kernel_is_sharp: bool, limits: NoiseLimits | None) -> NoiseFinding | None:
    """A series' noise against its region's ceiling; None where the check does not apply (no ceilings in
    the model file, too little soft tissue to measure, or sharp-kernel noise)."""
    noise, texture = finite_median(noises), finite_median(textures)
    if limits is None or not refs or noise is None or texture is None or kernel_is_sharp:
        return None
    if texture <= limits.sharp_texture:
        return None
    region = region_of(refs[0].body_part)
    if region not in limits.ceiling_hu:
        return None
    thickness = finite_median(r.thickness for r in refs)
    return NoiseFinding(at_reference(noise, thickness), limits.ceiling_hu[region], limits.routine_hu[region], region,
                        usable_thickness(thickness), "region")
