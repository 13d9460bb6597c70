"""Real files from other sources read as they are: blanked UIDs, reformats, photon-counting rescale."""

from __future__ import annotations

from tfkt_edge.dicom import scan


def test_blanked_uids_fall_back_to_file_meta_and_folder(realct):
    """TotalSegmentator's anonymiser blanked SOPClassUID, SOPInstanceUID and SeriesInstanceUID."""
    found = scan([realct / "totalsegmentator"])
    assert [s.reason for s in found.skipped if s.path.suffix == ".dcm"] == []
    assert len(found.series) == 1 and len(found.series[0].slices) == 20
    uids = {ref.sop_instance_uid for ref in found.series[0].slices}
    assert len(uids) == 20 and all(uids)


def test_every_manifest_image_is_read(realct):
    from tfkt_edge.train.realct import manifest_slices

    slices = manifest_slices(realct)
    assert len(slices) == 113
    found = scan([s.path for s in slices])
    assert found.n_slices == 113, [s.reason for s in found.skipped]
    refs = [ref for series in found.series for ref in series.slices]
    assert sum(ref.phantom_header for ref in refs) == 2  # the two rt-utils water-cylinder slices
    assert all(ref.thickness and 0.4 < ref.thickness < 6 for ref in refs)
