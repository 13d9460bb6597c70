"""A results database deleted or replaced under a running node: nothing more is acknowledged, C-ECHO fails,
the log says why, and webhook keys name the database so a new one never repeats an old key."""

from __future__ import annotations

from pathlib import Path

from .node import CLINICAL, associate, make_series, send

SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700


def echo(port: int) -> int:
    """The status of one C-ECHO from a real pynetdicom peer."""
    assoc = associate(port)
    try:
        return assoc.send_c_echo().Status
    finally:
        assoc.release()


def test_a_database_deleted_under_the_running_node_refuses_to_acknowledge(server, tmp_path):
    srv = server()
    assert send(srv.port, make_series(CLINICAL, tmp_path / "a", 1)) == [SUCCESS]
    srv.wait_events(1)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{srv.root / 'results.sqlite'}{suffix}").unlink(missing_ok=True)
    statuses = send(srv.port, make_series(CLINICAL, tmp_path / "b", 2))
    assert statuses == [OUT_OF_RESOURCES, OUT_OF_RESOURCES]  # before: success, into a deleted file
    assert echo(srv.port) != SUCCESS
    assert "was deleted while the node ran" in srv.output()


def test_a_database_replaced_under_the_running_node_is_noticed(server, tmp_path):
    srv = server()
    assert send(srv.port, make_series(CLINICAL, tmp_path / "a", 1)) == [SUCCESS]
    srv.wait_events(1)
    db = srv.root / "results.sqlite"
    copy = db.with_name("copy.sqlite")
    copy.write_bytes(db.read_bytes())
    copy.replace(db)  # another file at the same path (a restore from a backup while the node runs)
    assert send(srv.port, make_series(CLINICAL, tmp_path / "b", 1)) == [OUT_OF_RESOURCES]
    assert "was replaced by another file while the node ran" in srv.output()


def test_c_echo_fails_while_the_store_cannot_take_instances(server, tmp_path):
    import shutil

    srv = server()
    assert echo(srv.port) == SUCCESS
    shutil.rmtree(srv.root / "store")  # a store gone (an unmounted volume); a read-only one is refused alike
    assert echo(srv.port) != SUCCESS
    assert "the node cannot store instances" in srv.output()
