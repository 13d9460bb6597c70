"""A database the DICOM node cannot write (a full disk, a read-only volume): nothing acknowledged that was
not recorded, no file left unrecorded, and C-ECHO says the node cannot take instances until it can again."""

from __future__ import annotations

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service.database import Database
from tfkt_edge.service.scp import OUT_OF_RESOURCES, PROCESSING_FAILURE, SUCCESS, ScpConfig, StorageServer
from tfkt_edge.service.store import InstanceStore

from .node import free_port


def _send(port: int, dataset) -> tuple[int, int]:
    ae = AE(ae_title="SCANNER")
    ae.dimse_timeout = 300  # this test is about what is answered, not how fast: a loaded machine may be slow
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
    server = StorageServer(ScpConfig("TFKT", "127.0.0.1", free_port()), InstanceStore(store_root), db, lambda _: None)
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


def _mount_tmpfs(folder, size: str) -> bool:
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_a_real_full_disk_under_the_serve_process_refuses_cleanly_and_recovers(tmp_path):
    """`serve` with its store and database on a 4 MiB tmpfs: instances beyond the space are refused 0xA700, every
    acknowledged instance is stored and recorded, nothing unrecorded is left, and space freed is used again."""
    import sqlite3
    import subprocess
    import sys
    import time

    import pytest

    volume = tmp_path / "small"
    if not _mount_tmpfs(volume, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        source = pydicom.dcmread(EXAMPLES / "clinical" / "abdomen.dcm")
        source.decompress()  # about 0.5 MiB per instance
        port = free_port()
        log = tmp_path / "serve.log"
        with open(log, "w") as out:
            process = subprocess.Popen([sys.executable, "-m", "tfkt_edge", "serve", "--port", str(port),
                                        "--store", str(volume / "store"), "--db", str(volume / "results.sqlite"),
                                        "--series-timeout", "1", "--workers", "1"], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "listening as" not in log.read_text():
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            filler = volume / "filler.bin"
            filler.write_bytes(b"\0" * (1024 * 1024))
            statuses, acknowledged = [], []
            for _ in range(12):
                source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
                status, _ = _send(port, source)
                statuses.append(status)
                if status == SUCCESS:
                    acknowledged.append(source.SOPInstanceUID)
            assert SUCCESS in statuses and OUT_OF_RESOURCES in statuses, statuses
            assert set(statuses) <= {SUCCESS, OUT_OF_RESOURCES}
            stored = {p.stem for p in (volume / "store").rglob("*.dcm")}
            db = sqlite3.connect(f"file:{volume / 'results.sqlite'}?mode=ro", uri=True)
            recorded = {r[0] for r in db.execute("SELECT sop_instance_uid FROM instances")}
            db.close()
            assert stored == recorded == set(acknowledged)  # nothing acknowledged unrecorded, nothing recorded unstored
            assert not [p for p in (volume / "store").rglob("*") if p.is_file() and p.suffix != ".dcm"]  # no partial files
            filler.unlink()  # space again: the next instance is taken
            for file in (volume / "store").rglob("*.dcm"):
                file.unlink()
            source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
            assert _send(port, source)[0] == SUCCESS
            assert process.poll() is None
            assert "Traceback" not in log.read_text()
        finally:
            process.terminate()
            process.wait(timeout=60)
    finally:
        subprocess.run(["umount", "-l", str(volume)], capture_output=True, timeout=30)
