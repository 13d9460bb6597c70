"""Per-protocol baselines: each protocol's normal score range, learnt from series a site accepted.

Kernel, slice thickness, iterative reconstruction and patient mix move a
protocol's typical score, while its images stay diagnostic. A site therefore
records what its own accepted series score (`tfkt-edge calibrate`), per
protocol: station, series description, kernel and slice thickness. With a
baseline file, a series of a known protocol is judged against that protocol's
normal range instead of the fixed threshold: the alert line is

    low = median - max(3 x 1.4826 x MAD, margin)

of the accepted series' median scores (at least ``min_series`` of them),
clamped to [0.5, 3.5]. A degraded series of a protocol that normally scores
3.6 alerts below its own range; a sharp-kernel protocol that normally scores
1.8 no longer alerts on every series. Protocols without a baseline keep the
fixed threshold.

Where the accepted series' noise was measured (the noise check, `tfkt_edge.verdict.noise`),
the baseline also records the protocol's median noise at 3 mm, and a series of the
protocol is held to twice that where it is below the model's ceiling for the series'
kernel class and patient size: a quiet protocol (a spine, a head, a strong iterative
reconstruction) alerts on noise an ordinary body scan would have. A baseline only
tightens the physics: it never raises a ceiling above the model's.

Baselines learn only from series that passed (`calibrate` leaves out series that
alerted or lay outside the domain), and a file whose figures lie out of range (an
alert line outside the clamp, a noise figure that is not a positive HU value) is
refused with one line.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tfkt_edge.dicom import Series
from tfkt_edge.errors import InputError

FORMAT = "tfkt-edge-baselines/1"
MARGIN = 0.5
MIN_SERIES = 3
CLAMP = (0.5, 3.5)
NOISE_FACTOR = 2.0  # a protocol's noise ceiling: this times its accepted median; it may only tighten the model's
MAX_NOISE_HU = 1000.0  # no accepted CT series is noisier: a larger figure is a damaged or edited file


@dataclass(frozen=True)
class Protocol:
    station: str
    description: str
    kernel: str
    thickness: float | None

    @classmethod
    def of(cls, series: Series) -> Protocol:
        """The protocol of a scored series (a dicom.Series)."""
        first = series.slices[0]
        return cls(first.station.strip(), (series.description or "").strip().upper(), (series.kernel or "").strip().upper(),
                   None if first.thickness is None else round(float(first.thickness), 2))

    def text(self) -> str:
        thickness = "-" if self.thickness is None else f"{self.thickness:g} mm"
        return f"{self.station or '-'} / {self.description or '-'} / {self.kernel or '-'} / {thickness}"


@dataclass(frozen=True)
class Baseline:
    protocol: Protocol
    n_series: int
    median: float
    mad: float
    low: float
    noise_hu: float | None = None  # median noise of the accepted series (HU at 3 mm); None: not measured
    noise_series: int = 0

    @property
    def noise_ceiling_hu(self) -> float | None:
        return None if self.noise_hu is None else round(NOISE_FACTOR * self.noise_hu, 2)


@dataclass(frozen=True)
class Baselines:
    model: str
    entries: tuple[Baseline, ...]

    def require_model(self, identity: str) -> None:
        """Raise InputError unless these baselines were learnt with the model ``identity``."""
        if self.model != identity:
            raise InputError(f"the baselines were calibrated with model {self.model!r}, not {identity!r}: "
                             "run tfkt-edge calibrate again with this model")

    def lookup(self, series: Series) -> Baseline | None:
        protocol = Protocol.of(series)
        return next((b for b in self.entries if b.protocol == protocol), None)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "model": self.model, "created": datetime.now(timezone.utc).isoformat(),
                           "rule": f"low = median - max(3 x 1.4826 x MAD, {MARGIN}), clamped to {list(CLAMP)}; "
                                   f"noise ceiling = {NOISE_FACTOR:g} x the median noise at 3 mm",
                           "protocols": [asdict(b) for b in self.entries]}, indent=1) + "\n"


def learn(series_medians: Iterable[tuple[Any, ...]], model: str, min_series: int = MIN_SERIES,
          margin: float = MARGIN) -> Baselines:
    """Baselines from (protocol, median score) or (protocol, median score, noise HU at 3 mm or None) tuples of
    accepted series; protocols with too few series are left out, and a noise median needs as many."""
    grouped: dict[Protocol, list[float]] = {}
    noises: dict[Protocol, list[float]] = {}
    for protocol, median, *rest in series_medians:
        if median is not None and np.isfinite(median):
            grouped.setdefault(protocol, []).append(float(median))
            if rest and rest[0] is not None and np.isfinite(rest[0]):
                noises.setdefault(protocol, []).append(float(rest[0]))
    entries = []
    for protocol, medians in sorted(grouped.items(), key=lambda item: item[0].text()):
        if len(medians) < min_series:
            continue
        values = np.array(medians)
        centre = float(np.median(values))
        mad = float(np.median(np.abs(values - centre)))
        low = float(np.clip(centre - max(3 * 1.4826 * mad, margin), *CLAMP))
        noise = noises.get(protocol, [])
        noise_hu = round(float(np.median(noise)), 2) if len(noise) >= min_series else None
        entries.append(Baseline(protocol, len(values), round(centre, 4), round(mad, 4), round(low, 4), noise_hu,
                                len(noise)))
    return Baselines(model, tuple(entries))


def load(path: Path) -> Baselines:
    """Read a baseline file; raise InputError (one line) when it is unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        entries = tuple(Baseline(Protocol(**b["protocol"]), int(b["n_series"]), float(b["median"]), float(b["mad"]),
                                 float(b["low"]), None if b.get("noise_hu") is None else float(b["noise_hu"]),
                                 int(b.get("noise_series", 0))) for b in data["protocols"])
    except OSError as exc:
        raise InputError(f"cannot read baselines {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a tfkt-edge baseline file: {exc}") from None
    for b in entries:
        where = f"{path}: protocol {b.protocol.text()}"
        if not (np.isfinite(b.low) and CLAMP[0] <= b.low <= CLAMP[1]):
            raise InputError(f"{where}: alert line {b.low:g} outside {CLAMP[0]:g}-{CLAMP[1]:g} (calibrate writes no other)")
        if not (np.isfinite(b.median) and 0.0 <= b.median <= 4.0) or b.n_series < 1:
            raise InputError(f"{where}: median score {b.median:g} of {b.n_series} series is not a calibrated range")
        if b.noise_hu is not None and not (np.isfinite(b.noise_hu) and 0 < b.noise_hu <= MAX_NOISE_HU):
            raise InputError(f"{where}: noise {b.noise_hu:g} HU is not a positive figure up to {MAX_NOISE_HU:g} HU")
    return Baselines(str(data.get("model")), entries)


def save(baselines: Baselines, path: Path) -> Path:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(baselines.to_json())
    os.replace(tmp, path)
    return path
