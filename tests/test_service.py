"""`tfkt-edge serve` as a real process on a loopback port, driven by real DICOM peers.

The peers are a pynetdicom SCU and dcmtk's storescu/echoscu (Debian package
dcmtk, installed by `make test` where apt-get can; those tests skip with the
reason where it is absent). Series are real clinical CT (the bundled example
and its simulated 5%-dose copy), decompressed and re-identified per test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification
from typer.testing import CliRunner

from .conftest import PYDICOM_FILES
from .node import CLINICAL, DEGRADED, associate, dcmtk, free_port, make_series, needs_dcmtk, send


def test_echo_and_store_then_one_verdict_per_series(server, tmp_path):
    srv = server()
    assoc = associate(srv.port)
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    clinical = make_series(CLINICAL, tmp_path / "clinical", 5)
    degraded = make_series(DEGRADED, tmp_path / "degraded", 5)
    assert send(srv.port, clinical + degraded) == [0] * 10
    events = srv.wait_events(2)
    verdicts = {e["series_instance_uid"]: e["series"][0]["alert"] for e in events}
    assert verdicts == {pydicom.dcmread(clinical[0]).SeriesInstanceUID: False,
                        pydicom.dcmread(degraded[0]).SeriesInstanceUID: True}
    stored = sorted((tmp_path / "store").rglob("*.dcm"))
    assert len(stored) == 10 and all(p.stem == pydicom.dcmread(p).SOPInstanceUID for p in stored)
    srv.wait_output("RESCAN ALERT", "pass: Pancreas")
    # Each result names who and what it is about, read from the instances when they were scored.
    source = pydicom.dcmread(clinical[0])
    event = next(e for e in events if e["series_instance_uid"] == source.SeriesInstanceUID)
    study = event["series"][0]["study"]
    assert study["study_instance_uid"] == source.StudyInstanceUID and study["patient_id"] == str(source.PatientID)
    assert event["calling_ae"] == ["SCU"] and event["judged_utc"].endswith("+00:00")
    srv.wait_output(f"patient {source.PatientID}")


@needs_dcmtk
def test_dcmtk_storescu_and_echoscu(server, tmp_path):
    srv = server()
    folder = tmp_path / "dcmtk"
    make_series(DEGRADED, folder, 4)
    assert subprocess.run([dcmtk("echoscu"), "-aet", "SCANNER", "-aec", "TFKT", "127.0.0.1", str(srv.port)]).returncode == 0
    sent = subprocess.run([dcmtk("storescu"), "-aet", "SCANNER", "-aec", "TFKT", "+sd", "+r", "127.0.0.1", str(srv.port), str(folder)],
                          capture_output=True, text=True)
    assert sent.returncode == 0, sent.stderr
    (event,) = srv.wait_events(1)
    assert event["series"][0]["alert"] and event["series"][0]["n_slices"] == 4


def test_an_association_for_another_called_ae_title_is_refused(server):
    srv = server()
    ae = AE(ae_title="SCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", srv.port, ae_title="NOT_TFKT")
    assert assoc.is_rejected
    # The audit line names the title the caller asked for, not the node's own.
    deadline = time.monotonic() + 10  # written by the server's own thread
    while "association rejected: SCU -> NOT_TFKT (this node is TFKT) from 127.0.0.1:" not in srv.output():
        assert time.monotonic() < deadline, srv.output()
        time.sleep(0.1)


def test_idle_connections_cannot_lock_scanners_out(server):
    """16 sockets that connect and say nothing fill every association slot; they are dropped after the
    ARTIM timeout (5 s), and a scanner's echo gets through again."""
    from tfkt_edge.service.scp import IDLE_CONNECT_TIMEOUT

    srv = server()
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(16)]
    try:
        deadline = time.monotonic() + IDLE_CONNECT_TIMEOUT + 20
        while time.monotonic() < deadline:
            assoc = associate(srv.port)
            if assoc.is_established:
                assert assoc.send_c_echo().Status == 0x0000
                assoc.release()
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the idle connections kept every association slot")
    finally:
        for s in idle:
            s.close()


def _closed_by_peer(sock: socket.socket, seconds: float) -> bool:
    """Read until the server closes the connection (True) or ``seconds`` pass (False)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass  # an A-ABORT or A-ASSOCIATE-RJ PDU, then the close
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                           # the wrong protocol
    bytes([0x01, 0x00]) + (0xFFFFFFF0).to_bytes(4, "big") + b"\x00" * 64,  # A-ASSOCIATE-RQ claiming 4 GB
    bytes([0x04, 0x00]) + (12).to_bytes(4, "big") + b"\xff" * 12,        # P-DATA before any association
    bytes([0x7F, 0x00]) + (3).to_bytes(4, "big") + b"abc",                # an unknown PDU type
], ids=["http", "lying-length", "data-before-association", "unknown-pdu"])
@pytest.mark.slow  # up to 10 s each: the mid-PDU read timeout
def test_garbage_pdus_are_dropped_and_the_node_keeps_serving(server, tmp_path, garbage):
    srv = server()
    with socket.create_connection(("127.0.0.1", srv.port)) as raw:
        raw.sendall(garbage)
        assert _closed_by_peer(raw, seconds=20), "the server kept a garbage connection open"
    assert send(srv.port, make_series(CLINICAL, tmp_path / "s", 2)) == [0, 0]
    (event,) = srv.wait_events(1)
    assert event["series"][0]["n_slices"] == 2
    assert srv.process.poll() is None


def test_other_sop_classes_are_refused_at_negotiation(server):
    srv = server()
    mr = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")
    assoc = associate(srv.port, contexts=(MRImageStorage, Verification))
    assert assoc.is_established
    assert [c.abstract_syntax for c in assoc.accepted_contexts] == [Verification]
    with pytest.raises(ValueError):
        assoc.send_c_store(mr)
    assoc.release()


def test_callers_not_on_the_allow_list_are_rejected(server, tmp_path):
    srv = server("--allowed-callers", "SCANNER1,SCANNER2")
    stranger = associate(srv.port, "INTRUDER")
    assert stranger.is_rejected
    friend = associate(srv.port, "SCANNER2")
    assert friend.is_established and friend.send_c_echo().Status == 0
    friend.release()
    deadline = time.monotonic() + 10  # the audit line is written by the server's own thread
    while "association rejected: INTRUDER -> TFKT from 127.0.0.1:" not in srv.output():
        assert time.monotonic() < deadline, srv.output()
        time.sleep(0.1)


def test_bad_datasets_get_failure_statuses_and_the_server_keeps_serving(server, tmp_path):
    srv = server()
    good = make_series(CLINICAL, tmp_path / "good", 1)[0]
    traversal = pydicom.dcmread(good)
    traversal.SOPInstanceUID = "../../../etc/passwd"
    no_series = pydicom.dcmread(good)
    del no_series.SeriesInstanceUID
    no_series.SOPInstanceUID = generate_uid()
    assoc = associate(srv.port)
    assert assoc.send_c_store(traversal).Status == 0xC210
    assert assoc.send_c_store(no_series).Status == 0xC210
    assert assoc.send_c_store(pydicom.dcmread(good)).Status == 0x0000
    assoc.release()
    assert [p.name for p in (tmp_path / "store").rglob("*.dcm")] == [f"{pydicom.dcmread(good).SOPInstanceUID}.dcm"]
    assert not (tmp_path / "etc").exists()
    srv.wait_events(1)


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict, str]] = []  # noqa: RUF012 (shared by the handler instances on purpose)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((json.loads(body), self.headers["Idempotency-Key"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_is_retried_until_the_receiver_is_up(server, tmp_path):
    port = free_port()
    srv = server("--webhook", f"http://127.0.0.1:{port}/alerts")
    Receiver.received = []
    send(srv.port, make_series(DEGRADED, tmp_path / "s", 3))
    (event,) = srv.wait_events(1)  # the JSON-lines log does not wait for the webhook
    srv.wait_output("webhook delivery of result 1 failed")
    assert not Receiver.received
    http = HTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        deadline = time.monotonic() + 20
        while not Receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        http.shutdown()
    ((payload, key),) = Receiver.received
    import sqlite3

    with closing(sqlite3.connect(srv.root / "results.sqlite")) as db:  # the key names the database too
        (database,) = db.execute("SELECT value FROM meta WHERE key = 'database_uuid'").fetchone()
    assert payload["event_id"] == event["event_id"] and key == f"tfkt-edge-{database}-{event['event_id']}"
    assert payload["series"][0]["alert"] is True


def test_late_instances_make_a_revised_verdict_over_the_whole_series(server, tmp_path):
    """Instances arriving after the series was judged (a slow scanner, a restart) are never left out."""
    srv = server()
    paths = make_series(CLINICAL, tmp_path / "s", 5)
    assert send(srv.port, paths[:2]) == [0, 0]
    (first,) = srv.wait_events(1)
    assert first["series"][0]["n_slices"] == 2 and first["revision"] == 0
    assert send(srv.port, paths[2:]) == [0, 0, 0]
    events = srv.wait_events(2)
    revised = events[-1]
    assert revised["series_instance_uid"] == first["series_instance_uid"]
    assert revised["revision"] == 1 and revised["series"][0]["n_slices"] == 5
    srv.wait_output("(revised, #1)")
    # `results` lists each series' current verdict; the superseded one with --all-revisions.
    from tfkt_edge.cli.main import app

    db = str(tmp_path / "results.sqlite")
    (current,) = json.loads(CliRunner().invoke(app, ["results", "--db", db, "--format", "json"]).stdout)
    assert current["revision"] == 1 and current["n_slices"] == 5
    every = json.loads(CliRunner().invoke(app, ["results", "--db", db, "--format", "json", "--all-revisions"]).stdout)
    assert [r["revision"] for r in every] == [0, 1]
    table = CliRunner().invoke(app, ["results", "--db", db], env={"COLUMNS": "250"}).stdout
    assert "1 superseded revision(s) not listed" in table and "(revision 1)" in table


def test_a_series_sent_in_one_association_is_judged_when_it_is_released(server, tmp_path):
    """No wait for the quiet timeout (60 s here) once the scanner releases the association that carried the series;
    an association carrying a single instance (scanners that send instance by instance) does not close its series."""
    srv = server(timeout=60.0)
    paths = make_series(CLINICAL, tmp_path / "s", 3)
    assert send(srv.port, paths[:1]) == [0]
    assert send(srv.port, paths[1:]) == [0, 0]
    (event,) = srv.wait_events(1, seconds=30)
    assert event["series"][0]["n_slices"] == 3 and event["revision"] == 0


def test_kill_9_loses_nothing_and_repeats_nothing(server, tmp_path):
    srv = server(timeout=3.0)
    first = make_series(DEGRADED, tmp_path / "a", 6)
    assoc = associate(srv.port)
    assert [assoc.send_c_store(pydicom.dcmread(p)).Status for p in first] == [0] * 6
    srv.process.kill()  # SIGKILL mid-association: before its release or the 3 s timeout could complete the series
    srv.process.wait()
    assoc.abort()
    assert srv.events() == []
    db = sqlite3.connect(str(tmp_path / "results.sqlite"))
    assert db.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 6  # every acknowledged instance
    db.close()
    again = server(timeout=1.0)
    (event,) = again.wait_events(1)  # the unfinished series is finished and scored after the restart
    assert event["series"][0]["n_slices"] == 6 and event["series"][0]["alert"]
    again.process.kill()
    again.process.wait()
    third = server(timeout=1.0)
    wait_delivered(tmp_path / "results.sqlite")  # everything the third start owed is delivered...
    assert len(third.events()) == 1  # ...and nothing was emitted a second time
    assert len(list((tmp_path / "store").rglob("*.dcm"))) == 6


def wait_delivered(db_path: Path, seconds: float = 30) -> None:
    """Until every result in the database is delivered to every sink."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db = sqlite3.connect(str(db_path))
        try:
            pending, total = db.execute("SELECT SUM(delivered_at IS NULL), COUNT(*) FROM deliveries").fetchone()
        finally:
            db.close()
        if total and not pending:
            return
        time.sleep(0.1)
    raise AssertionError("results still undelivered")


def test_files_that_are_not_a_tfkt_edge_database_are_refused_untouched(tmp_path):
    from typer.testing import CliRunner

    from tfkt_edge.cli.main import app
    from tfkt_edge.service.database import SCHEMA

    foreign = tmp_path / "other-app.sqlite"
    db = sqlite3.connect(str(foreign))
    db.execute("CREATE TABLE notes (body TEXT)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 20)
    before = {p: p.read_bytes() for p in (foreign, text)}
    runner = CliRunner()
    for path, reason in ((foreign, "another application"), (text, "not an SQLite file")):
        for command in (["results", "--db", str(path)], ["calibrate", "--db", str(path), "-o", str(tmp_path / "b.json")]):
            result = runner.invoke(app, command)
            assert result.exit_code == 2, result.output
            assert result.stderr.count("\n") == 1 and reason in result.stderr
        served = subprocess.run([sys.executable, "-m", "tfkt_edge", "serve", "--port", str(free_port()), "--db", str(path),
                                 "--store", str(tmp_path / "store")], capture_output=True, text=True, timeout=120)
        assert served.returncode == 2 and reason in served.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "other-app.sqlite"]  # no WAL, no store
    legacy = tmp_path / "legacy.sqlite"  # a tfkt-edge database from before the marker
    db = sqlite3.connect(str(legacy))
    db.executescript(SCHEMA)
    db.close()
    listed = runner.invoke(app, ["results", "--db", str(legacy), "--format", "json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_results_command_reads_the_database(server, tmp_path):
    from typer.testing import CliRunner

    from tfkt_edge.cli.main import app

    srv = server()
    send(srv.port, make_series(DEGRADED, tmp_path / "s", 2))
    srv.wait_events(1)
    runner = CliRunner()
    listed = runner.invoke(app, ["results", "--db", str(tmp_path / "results.sqlite"), "--format", "json", "--since", "1h"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["alert"] is True and row["n_slices"] == 2
    future = runner.invoke(app, ["results", "--db", str(tmp_path / "results.sqlite"), "--format", "json", "--since", "2999-01-01"])
    assert json.loads(future.stdout) == []
    bad = runner.invoke(app, ["results", "--db", str(tmp_path / "results.sqlite"), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.stderr
    wrong = runner.invoke(app, ["results", "--db", str(tmp_path / "results.sqlite"), "--status", "fail"])
    assert wrong.exit_code == 2 and "--status must be one of" in wrong.stderr
    # Who and which study, from the series' own headers: what a technologist places a result by.
    header = pydicom.dcmread(make_series(DEGRADED, tmp_path / "probe", 1)[0], stop_before_pixels=True)
    assert row["patient_id"] == str(header.get("PatientID", "")) and row["study_date"] == str(header.get("StudyDate", ""))
    # The judged series are what a site calibrates its per-protocol baselines from: those that passed only.
    out = tmp_path / "baselines.json"
    learnt = runner.invoke(app, ["calibrate", "--db", str(tmp_path / "results.sqlite"), "--min-series", "1", "-o", str(out)])
    assert learnt.exit_code == 0, learnt.output
    assert json.loads(out.read_text())["protocols"] == [] and "1 series left out (they alerted" in learnt.output
    send(srv.port, make_series(CLINICAL, tmp_path / "c", 2))
    srv.wait_events(2)
    for wanted, count in (("alert", 1), ("pass", 1), ("outside-domain", 0)):
        only = runner.invoke(app, ["results", "--db", str(tmp_path / "results.sqlite"), "--format", "json", "--status", wanted])
        assert len(json.loads(only.stdout)) == count and all(r["status"] == wanted for r in json.loads(only.stdout))
    learnt = runner.invoke(app, ["calibrate", "--db", str(tmp_path / "results.sqlite"), "--min-series", "1", "-o", str(out)])
    assert learnt.exit_code == 0, learnt.output
    (protocol,) = json.loads(out.read_text())["protocols"]
    assert protocol["n_series"] == 1 and protocol["protocol"]["description"] == "PANCREAS"
    assert protocol["noise_series"] == 1 and 5 < protocol["noise_hu"] < 35  # the noise the node measured and stored


@pytest.mark.slow
def test_watch_folder_scores_written_and_closed_files_in_place(tmp_path):
    import hashlib

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    args = [sys.executable, "-m", "tfkt_edge", "watch", str(inbox), "--settle", "0.5", "--series-timeout", "1",
            "--db", str(tmp_path / "results.sqlite"), "--workers", "1"]
    log = open(tmp_path / "watch.log", "w")  # noqa: SIM115 (open while the watcher runs)
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "300"})
    try:
        deadline = time.monotonic() + 60
        while "watching" not in (tmp_path / "watch.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        paths = make_series(DEGRADED, tmp_path / "staging", 3)
        data = paths[0].read_bytes()
        slow = inbox / "exam" / "slow.dcm"
        slow.parent.mkdir()
        with open(slow, "wb") as f:  # a file still being written is not read half-way
            f.write(data[:4096])
            f.flush()
            time.sleep(1.5)
            f.write(data[4096:])
        for p in paths[1:]:
            shutil.copyfile(p, inbox / "exam" / p.name)
        (inbox / "notes.txt").write_text("not DICOM")
        before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inbox.rglob("*") if p.is_file()}
        events_path = tmp_path / "results.sqlite.events.jsonl"
        wait_delivered(tmp_path / "results.sqlite")  # the result is in the event log, whole, once this returns
        (event,) = [json.loads(line) for line in events_path.read_text().splitlines()]
        assert event["series"][0]["n_slices"] == 3 and event["series"][0]["alert"]
        assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inbox.rglob("*") if p.is_file()} == before
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    output = (tmp_path / "watch.log").read_text()
    assert "notes.txt: not a readable DICOM file" in output


def test_basic_text_sr_reaches_the_destination_archive(server, tmp_path):
    """A real Storage SCP (pynetdicom's storescp app, as a process) receives the result as a Basic Text SR."""
    from pynetdicom.sop_class import BasicTextSRStorage

    archive_port, received = free_port(), tmp_path / "archive"
    received.mkdir()
    archive = subprocess.Popen([sys.executable, "-m", "pynetdicom", "storescp", str(archive_port), "-aet", "ARCHIVE",
                                "-od", str(received)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        srv = server("--sr-destination", f"ARCHIVE@127.0.0.1:{archive_port}")
        paths = make_series(DEGRADED, tmp_path / "s", 3)
        send(srv.port, paths)
        srv.wait_events(1)
        # Delivered: the archive answered the C-STORE, which it does once the file is written whole (waiting
        # for the file to appear instead read it half written once).
        wait_delivered(srv.root / "results.sqlite")
    finally:
        archive.terminate()
        archive.wait(timeout=10)
    (sr_file,) = list(received.iterdir())
    sr = pydicom.dcmread(sr_file)
    source = pydicom.dcmread(paths[0])
    assert sr.SOPClassUID == BasicTextSRStorage and sr.Modality == "SR" and sr.VerificationFlag == "UNVERIFIED"
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == source.PatientID
    texts = {item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue for item in sr.ContentSequence}
    assert texts["Verdict"].startswith("RESCAN ALERT") and "NOT radiologist scores" in texts["Method"]
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == source.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in evidence.ReferencedSOPSequence} == {pydicom.dcmread(p).SOPInstanceUID for p in paths}


def test_a_real_phantom_scan_is_reported_outside_the_domain_not_alerted(server, realct, tmp_path):
    """The GE daily-QA water cylinder, sent as the scanner would: a distinct status, never a rescan alert."""
    srv = server()
    phantom = sorted((realct / "rt-utils").glob("*.dcm"))
    assert send(srv.port, phantom) == [0] * len(phantom)
    (event,) = srv.wait_events(1)
    series = event["series"][0]
    assert series["status"] == "outside-domain" and series["alert"] is False
    assert series["domain"]["reasons"] and series["reason"].startswith("outside the validated domain")
    srv.wait_output("OUTSIDE DOMAIN")
    listed = subprocess.run([sys.executable, "-m", "tfkt_edge", "results", "--db", str(tmp_path / "results.sqlite"),
                             "--format", "json"], capture_output=True, text=True)
    assert json.loads(listed.stdout)[0]["status"] == "outside-domain"


def test_enhanced_ct_frames_are_scored_as_slices(server, real, tmp_path):
    srv = server()
    assert send(srv.port, [real["enhanced_ct"]]) == [0]
    (event,) = srv.wait_events(1)
    frames = pydicom.dcmread(real["enhanced_ct"], stop_before_pixels=True).NumberOfFrames
    series = event["series"][0]
    assert series["n_slices"] == frames and sorted(s["frame"] for s in series["slices"]) == list(range(frames))


def test_serve_and_watch_usage_errors_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from tfkt_edge.cli.main import app

    runner = CliRunner()
    common = ["--db", str(tmp_path / "r.sqlite"), "--store", str(tmp_path / "store")]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = runner.invoke(app, ["serve", "--port", str(busy.getsockname()[1]), *common])
    assert taken.exit_code == 2 and "cannot listen on 127.0.0.1" in taken.stderr
    assert not (tmp_path / "r.sqlite").exists() and not (tmp_path / "store").exists()  # a failed start leaves nothing
    for extra, says in ((["--webhook", "ftp://example"], "webhook URL must start with http"),
                        (["--sr-destination", "PACS"], "ARCHIVE@host:port"),
                        (["--ae-title", "A" * 17], "--ae-title must be 1-16 characters")):
        result = runner.invoke(app, ["serve", "--port", str(free_port()), *common, *extra])
        assert result.exit_code == 2 and says in result.stderr and result.stderr.count("\n") == 1
        assert not (tmp_path / "r.sqlite").exists()
    missing = runner.invoke(app, ["watch", str(tmp_path / "absent")])
    assert missing.exit_code == 2 and "is not a folder" in missing.stderr
