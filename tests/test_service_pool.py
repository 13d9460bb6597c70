"""The service's scoring worker with decoding processes: a process that dies does not stop the service."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from tfkt_edge.backends import create_backend
from tfkt_edge.bench.benchmark import write_series
from tfkt_edge.dicom import scan
from tfkt_edge.pipeline.decode import decoder_pool
from tfkt_edge.service.database import Database
from tfkt_edge.service.worker import DECODER_DIED, ScoringWorker
from tfkt_edge.verdict.policy import AlertPolicy


@pytest.fixture(scope="module")
def backend():
    return create_backend("onnxruntime")


def _broken_pool():
    """A real pool of two decoding processes, both killed (as by the out-of-memory killer)."""
    before = set(multiprocessing.active_children())
    pool = decoder_pool(2, "processes")
    pool.submit(os.getpid).result()
    for process in set(multiprocessing.active_children()) - before:
        process.kill()
        process.join()
    return pool


def _stored(db: Database, folder) -> list[str]:
    refs = [ref for series in scan([folder]).series for ref in series.slices]
    for ref in refs:
        db.record_instance(ref.sop_instance_uid, ref.series_instance_uid, ref.study_instance_uid, ref.path, "CT1")
    return [ref.sop_instance_uid for ref in refs]


def test_a_dead_decoding_process_is_replaced_and_the_batch_scored(tmp_path, backend):
    write_series(tmp_path / "in", 6)
    db = Database(tmp_path / "service.db")
    sops = _stored(db, tmp_path / "in")
    pools = []

    def make_pool():
        pools.append(decoder_pool(2, "processes"))
        return pools[-1]

    worker = ScoringWorker(db, backend, AlertPolicy(), 60.0, [], _broken_pool(), batch_size=8, make_pool=make_pool)
    try:
        assert worker.step()
        assert not db.unprocessed(100)
        series_uid = scan([tmp_path / "in"]).series[0].series_instance_uid
        assert sorted(ref.sop_instance_uid for ref, _, _ in db.series_slices(series_uid)) == sorted(sops)
        assert not db.series_skips(series_uid)
    finally:
        worker.pool.shutdown()
        db.close()


def test_an_instance_that_breaks_the_pool_again_is_skipped_with_its_reason(tmp_path, backend):
    write_series(tmp_path / "in", 3)
    db = Database(tmp_path / "service.db")
    sops = _stored(db, tmp_path / "in")
    worker = ScoringWorker(db, backend, AlertPolicy(), 60.0, [], _broken_pool(), batch_size=8, make_pool=_broken_pool)
    try:
        assert worker.step()  # every pool it gets is broken: each instance alone breaks it, and is skipped
        assert not db.unprocessed(100)
        series_uid = scan([tmp_path / "in"]).series[0].series_instance_uid
        assert sorted(reason for _, reason in db.series_skips(series_uid)) == [DECODER_DIED] * len(sops)
    finally:
        worker.pool.shutdown()
        db.close()
