"""The stored result: the typed document of a scoring run, written once and read back as the same types.

`render.document` writes it (JSON for `score --format json`, and what the service stores for every verdict);
the service's console line, JSON log, webhook and DICOM SR, `results` and `calibrate` read it back with
`RunRecord.from_dict` instead of picking string keys apart. The study identity is kept once per series
(`Study`). ``schema`` says which form a document has; documents stored before it existed (no ``schema``)
read as schema 1, every field they lack left at its default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from tfkt_edge.dicom import Skip, SliceRef
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.verdict.baselines import Protocol
from tfkt_edge.verdict.policy import ALERT, PASS, Finding
from tfkt_edge.verdict.result import SeriesResult

SCHEMA = 2


@dataclass(frozen=True)
class Study:
    """Who and where, read from the series' own headers when it was scored (never re-read later)."""

    study_instance_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    study_date: str = ""
    station: str = ""
    manufacturer: str = ""
    study_time: str = ""
    study_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    referring_physician_name: str = ""

    @classmethod
    def of(cls, ref: SliceRef | None) -> Study:
        return cls(**{f.name: str(getattr(ref, f.name, "") or "") for f in fields(cls)}) if ref is not None else cls()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Study:
        data = data or {}
        return cls(**{f.name: str(data.get(f.name) or "") for f in fields(cls)})



@dataclass(frozen=True)
class SliceRecord:
    path: str
    sop_instance_uid: str
    instance_number: int | None
    frame: int | None
    score: float
    learned_score: float | None = None
    noise_bound: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceRecord:
        return cls(str(data.get("path", "")), str(data.get("sop_instance_uid", "")), data.get("instance_number"),
                   data.get("frame"), float(data["score"]), data.get("learned_score"), data.get("noise_bound"))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


@dataclass(frozen=True)
class SeriesRecord:
    """One series' result as stored: identity, scores, the verdict with its findings, physics, study, slices."""

    series_instance_uid: str
    description: str = ""
    modality: str = ""
    kernel: str = ""
    n_slices: int = 0
    mean_score: float | None = None
    median_score: float | None = None
    min_score: float | None = None
    status: str = PASS
    alert: bool = False
    reason: str = ""
    findings: tuple[Finding, ...] = ()
    domain: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] | None = None
    physics: dict[str, Any] | None = None
    protocol: dict[str, Any] | None = None
    study: Study = field(default_factory=Study)
    slices: tuple[SliceRecord, ...] = ()

    @classmethod
    def of(cls, result: SeriesResult) -> SeriesRecord:
        scores = result.scores
        series = result.series
        return cls(
            series.series_instance_uid, series.description, series.modality, series.kernel, len(result.slices),
            _rounded(scores.mean()) if scores.size else None, _rounded(np.median(scores)) if scores.size else None,
            _rounded(scores.min()) if scores.size else None, result.verdict.status, result.verdict.alert,
            result.verdict.reason, result.verdict.findings, result.domain.to_dict(),
            result.noise.to_dict() if result.noise is not None else None,
            result.physics.to_dict() if result.physics is not None else None,
            asdict(Protocol.of(series)) if series.slices else None,
            Study.of(series.slices[0] if series.slices else None),
            tuple(SliceRecord(str(s.ref.path), s.ref.sop_instance_uid, s.ref.instance_number, s.ref.frame,
                              round(s.score, 4), round(s.learned, 4), _rounded(s.bound)) for s in result.slices))

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["findings"] = [f.to_dict() for f in self.findings]
        data["study"] = asdict(self.study)
        data["slices"] = [asdict(s) for s in self.slices]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeriesRecord:
        alert = bool(data.get("alert", False))
        return cls(
            str(data.get("series_instance_uid", "")), str(data.get("description", "")), str(data.get("modality", "")),
            str(data.get("kernel", "")), int(data.get("n_slices", 0)), data.get("mean_score"), data.get("median_score"),
            data.get("min_score"), str(data.get("status") or (ALERT if alert else PASS)), alert, str(data.get("reason", "")),
            tuple(Finding(**f) for f in data.get("findings", [])), dict(data.get("domain") or {}), data.get("noise"),
            data.get("physics"), data.get("protocol"), Study.from_dict(data.get("study")),
            tuple(SliceRecord.from_dict(s) for s in data.get("slices", [])))


@dataclass(frozen=True)
class RunRecord:
    """A scoring run (or, in the service, one series' verdict) as stored; the service adds its own fields
    (the series it judged, the revision, when, the event id) under ``service``."""

    model: dict[str, Any]
    series: tuple[SeriesRecord, ...] = ()
    skipped: tuple[dict[str, str], ...] = ()
    schema: int = SCHEMA
    service: dict[str, Any] = field(default_factory=dict)

    SERVICE_KEYS = ("series_instance_uid", "revision", "judged_utc", "event_id", "created_at")

    @classmethod
    def of(cls, model: ModelInfo, results: list[SeriesResult], skipped: list[Skip], threshold: float) -> RunRecord:
        return cls({**model.summary(), "threshold": threshold}, tuple(SeriesRecord.of(r) for r in results),
                   tuple({"path": str(s.path), "reason": s.reason} for s in skipped))

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "model": self.model, "series": [s.to_dict() for s in self.series],
                "skipped": list(self.skipped), **self.service}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(dict(data.get("model") or {}), tuple(SeriesRecord.from_dict(s) for s in data.get("series", [])),
                   tuple(data.get("skipped", [])), int(data.get("schema", 1)),
                   {k: data[k] for k in cls.SERVICE_KEYS if k in data})

    @property
    def first(self) -> SeriesRecord | None:
        """The series of a service verdict (one per document), or None for a document with none scorable."""
        return self.series[0] if self.series else None
