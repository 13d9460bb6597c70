"""The same instance sent twice at once: the second arrival is never marked done by the first one's scoring."""

from __future__ import annotations

import shutil

from tfkt_edge.dicom.slices import read_slices
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service.database import Database


def test_an_instance_received_again_while_it_was_scored_is_scored_again(tmp_path):
    stored = tmp_path / "store" / "a.dcm"
    stored.parent.mkdir()
    shutil.copyfile(EXAMPLES / "clinical" / "abdomen.dcm", stored)
    (ref,) = read_slices(stored)
    db = Database(tmp_path / "results.sqlite")
    try:
        db.record_instance(ref.sop_instance_uid, ref.series_instance_uid, ref.study_instance_uid, stored, "SCANNER1")
        (picked,) = db.unprocessed(10)
        # The second caller's copy lands (the store replaces the file) while the first is being scored.
        db.record_instance(ref.sop_instance_uid, ref.series_instance_uid, ref.study_instance_uid, stored, "SCANNER2")
        db.record_scores([(ref, 3.1, None)], {}, [picked[0]], {picked[0]: picked[3]})
        (again,) = db.unprocessed(10)  # not marked done over the second arrival
        assert again[0] == ref.sop_instance_uid and again[3] > picked[3]
        assert db.series_slices(ref.series_instance_uid) == []  # the first pass's result was not kept
        db.record_scores([(ref, 3.2, None)], {}, [again[0]], {again[0]: again[3]})
        assert db.unprocessed(10) == []
        ((_, score, _),) = db.series_slices(ref.series_instance_uid)
        assert score == 3.2
    finally:
        db.close()
