"""A database the DICOM node cannot write (a full disk, a read-only volume): nothing acknowledged that was
not recorded, no file left unrecorded, and C-ECHO says the node cannot take instances until it can again."""

from __future__ import annotations

import socket

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from tfkt_edge.cli.demo import EXAMPLES
from tfkt_edge.service.database import Database
from tfkt_edge.service.scp import OUT_OF_RESOURCES, PROCESSING_FAILURE, SUCCESS, ScpConfig, StorageServer
from tfkt_edge.service.store import InstanceStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send(port: int, dataset) -> tuple[int, int]:
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(CTImageStorage, [dataset.file_meta.TransferSyntaxUID])
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="TFKT")
    assert assoc.is_established
    try:
        return assoc.send_c_store(dataset).Status, assoc.send_c_echo().Status
    finally:
        assoc.release()


def test_an_unwritable_database_refuses_instances_and_fails_the_echo_until_it_recovers(tmp_path):
    db = Database(tmp_path / "results.sqlite")
    store_root = tmp_path / "store"
    # SQLite's own read-only switch on the node's own connection: every write fails inside SQLite,
    # as it does on a full disk (the handling is the same for every sqlite3.Error).
    db._db.execute("PRAGMA query_only = ON")
    server = StorageServer(ScpConfig("TFKT", "127.0.0.1", _free_port()), InstanceStore(store_root), db, lambda _: None)
    server.start()
    try:
        dataset = pydicom.dcmread(EXAMPLES / "clinical" / "abdomen.dcm")
        stored, echo = _send(server.config.port, dataset)
        assert (stored, echo) == (OUT_OF_RESOURCES, PROCESSING_FAILURE)
        assert "readonly" in db.write_error
        assert list(store_root.rglob("*.dcm")) == []  # refused, so not kept
        db._db.execute("PRAGMA query_only = OFF")
        stored, echo = _send(server.config.port, dataset)
        assert (stored, echo) == (SUCCESS, SUCCESS) and db.write_error is None
        assert len(list(store_root.rglob("*.dcm"))) == 1 and db.instance_files()
    finally:
        server.stop()
        db.close()
