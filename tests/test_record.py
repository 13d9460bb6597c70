"""The stored result is read back as the same types: a real run's document round-trips, and a document stored
before the schema existed still reads (what a node upgraded in place finds in its database)."""

from __future__ import annotations

import json

import tfkt_edge
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service.report_sr import build_sr
from tfkt_edge.service.sinks import one_line
from tfkt_edge.verdict.record import SCHEMA, RunRecord


def test_a_real_runs_document_round_trips_through_the_typed_record():
    doc = tfkt_edge.document(tfkt_edge.score(EXAMPLES / "clinical", EXAMPLES / "degraded"))
    assert doc["schema"] == SCHEMA and all("study" in s and "findings" in s for s in doc["series"])
    record = RunRecord.from_dict(json.loads(json.dumps(doc)))
    assert record.to_dict() == json.loads(json.dumps(doc))
    alert = next(s for s in record.series if s.alert)
    assert alert.study.patient_id and alert.findings[0].check == "scores" and alert.slices[0].learned_score is not None


def test_a_document_stored_before_the_schema_still_reads_in_every_reader():
    old = {"model": {"name": "tfkt_edge_s", "version": "0.3.2", "threshold": 2.0, "labels": "..."},
           "series": [{"series_instance_uid": "1.2.3", "description": "ABD", "n_slices": 2, "median_score": 1.5,
                       "min_score": 1.2, "alert": True, "reason": "median score 1.50 < 2.00",
                       "study": {"study_instance_uid": "1.2", "patient_id": "P1"},
                       "slices": [{"path": "a.dcm", "sop_instance_uid": "1.2.3.4", "instance_number": 1, "frame": None,
                                   "score": 1.5}]}],
           "skipped": [], "series_instance_uid": "1.2.3", "revision": 0, "event_id": 7, "created_at": 0.0}
    record = RunRecord.from_dict(old)
    assert record.schema == 1 and record.first is not None and record.first.status == "alert"
    assert record.first.findings == () and record.first.slices[0].learned_score is None
    alert, line = one_line(old)
    assert alert and "RESCAN ALERT: ABD [patient P1]" in line
    assert build_sr(7, old) is not None
