"""A C-STORE from another series that reuses a recorded SOP Instance UID is refused; the first series keeps every
slice (a real node process, a pynetdicom peer, real CT)."""

from __future__ import annotations

import pydicom

from .node import CLINICAL, DEGRADED, associate, make_series


def test_another_series_reusing_an_instance_uid_is_refused_and_loses_the_first_series_nothing(server, tmp_path):
    srv = server()
    first = make_series(CLINICAL, tmp_path / "a", 3)
    second = make_series(DEGRADED, tmp_path / "b", 2)
    clash = pydicom.dcmread(second[0])
    clash.SOPInstanceUID = clash.file_meta.MediaStorageSOPInstanceUID = pydicom.dcmread(first[1]).SOPInstanceUID
    assoc = associate(srv.port)
    assert assoc.is_established
    try:
        assert [assoc.send_c_store(pydicom.dcmread(p)).Status for p in first] == [0, 0, 0]
        answer = assoc.send_c_store(clash)
        other = assoc.send_c_store(pydicom.dcmread(second[1]))
    finally:
        assoc.release()
    assert answer.Status == 0xC210 and "another series" in answer.ErrorComment
    assert other.Status == 0
    events = srv.wait_events(2)
    by_series = {e["series_instance_uid"]: e["series"][0] for e in events}
    assert by_series[pydicom.dcmread(first[0]).SeriesInstanceUID]["n_slices"] == 3
    assert by_series[clash.SeriesInstanceUID]["n_slices"] == 1
    srv.wait_output("a UID collision, the recorded instance is kept")
