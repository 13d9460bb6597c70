"""Grouping slices into series and ordering them along the patient axis."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tfkt_edge.dicom.slices import SliceRef


@dataclass(frozen=True)
class Series:
    series_instance_uid: str
    description: str
    modality: str
    kernel: str
    slices: tuple[SliceRef, ...]


def _order_key(ref: SliceRef, by_position: bool):
    frame = ref.frame if ref.frame is not None else -1
    instance = ref.instance_number if ref.instance_number is not None else float("inf")
    if by_position:
        return (ref.position, instance, frame, str(ref.path))
    return (instance, frame, str(ref.path))


def group_series(refs: Iterable[SliceRef]) -> list[Series]:
    """Group by SeriesInstanceUID; order by position along the slice normal when
    every slice of the series has one, else by InstanceNumber (then frame, path)."""
    groups: dict[str, list[SliceRef]] = defaultdict(list)
    for ref in refs:
        groups[ref.series_instance_uid].append(ref)
    series = []
    for uid, members in groups.items():
        by_position = all(ref.position is not None for ref in members)
        members.sort(key=lambda ref: _order_key(ref, by_position))
        first = members[0]
        series.append(Series(uid, first.series_description, first.modality, first.kernel, tuple(members)))
    series.sort(key=lambda s: (s.description, s.series_instance_uid))
    return series
