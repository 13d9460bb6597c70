"""`tfkt-edge serve --tls-cert/--tls-key [--tls-ca]`: a real server process, real TLS peers (pynetdicom).

The certificates are made per test with `cryptography`: a CA, a server
certificate for 127.0.0.1 and a client certificate, both signed by the CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from .node import CLINICAL, DEGRADED, make_series

x509 = pytest.importorskip("cryptography.x509", reason="needs the cryptography package (the [test] extra)")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _issue(subject: str, issuer_key, issuer_name, key, ca: bool, san: bool = False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert, key) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("tfkt test CA", ca_key, None, ca_key, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert, _ = _write(folder, "ca", ca, ca_key)
    server_cert, server_key_path = _write(folder, "server", _issue("tfkt node", ca_key, ca.subject, server_key, False, san=True),
                                          server_key)
    client_cert, client_key_path = _write(folder, "client", _issue("CT1", ca_key, ca.subject, client_key, False), client_key)
    return {"ca": ca_cert, "server_cert": server_cert, "server_key": server_key_path,
            "client_cert": client_cert, "client_key": client_key_path}


def _client_context(pki: dict[str, Path], with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    if with_certificate:
        context.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
    return context


def _associate(port: int, tls: ssl.SSLContext | None):
    ae = AE(ae_title="CT1")
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title="TFKT", tls_args=(tls, "127.0.0.1") if tls else None)


def test_a_tls_node_scores_over_tls_and_refuses_plain_associations(server, pki, tmp_path):
    srv = server("--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]))
    srv.wait_output("over TLS")
    plain = _associate(srv.port, None)
    assert not plain.is_established
    assoc = _associate(srv.port, _client_context(pki, with_certificate=False))
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(pydicom.dcmread(p)).Status for p in make_series(DEGRADED, tmp_path / "s", 3)]
    finally:
        assoc.release()
    assert statuses == [0, 0, 0]
    (event,) = srv.wait_events(1)
    assert event["series"][0]["alert"] and event["series"][0]["n_slices"] == 3


@pytest.mark.slow  # the 5 s handshake limit
def test_a_connection_that_never_says_hello_cannot_stall_a_tls_node(server, pki, tmp_path):
    """The TLS handshake runs in the connection's own thread: a silent peer holds one slot, briefly, not the door."""
    srv = server("--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]))
    with socket.create_connection(("127.0.0.1", srv.port)) as silent:
        assoc = _associate(srv.port, _client_context(pki, with_certificate=False))
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        silent.settimeout(30)
        assert silent.recv(1) == b""  # dropped once the handshake time is up
    srv.wait_output("TLS handshake with 127.0.0.1")


def test_with_a_ca_only_callers_holding_a_certificate_it_signed_are_accepted(server, pki, tmp_path):
    srv = server("--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]), "--tls-ca", str(pki["ca"]))
    assert not _associate(srv.port, _client_context(pki, with_certificate=False)).is_established
    assoc = _associate(srv.port, _client_context(pki, with_certificate=True))
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        assert [assoc.send_c_store(pydicom.dcmread(p)).Status for p in make_series(CLINICAL, tmp_path / "s", 2)] == [0, 0]
    finally:
        assoc.release()
    (event,) = srv.wait_events(1)
    assert not event["series"][0]["alert"]


@pytest.mark.parametrize("case", ["key of another certificate", "missing key", "cert without key", "ca without cert"])
def test_bad_tls_options_are_one_line_errors_that_leave_nothing_behind(pki, tmp_path, case):
    options = {"key of another certificate": ["--tls-cert", pki["server_cert"], "--tls-key", pki["client_key"]],
               "missing key": ["--tls-cert", pki["server_cert"], "--tls-key", tmp_path / "nope.key"],
               "cert without key": ["--tls-cert", pki["server_cert"]],
               "ca without cert": ["--tls-ca", pki["ca"]]}[case]
    db = tmp_path / "results.sqlite"
    result = subprocess.run([sys.executable, "-m", "tfkt_edge", "serve", "--port", "1", "--db", str(db),
                             "--store", str(tmp_path / "store"), *map(str, options)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "tls" in lines[0].lower(), result.stderr
    assert not db.exists() and not (tmp_path / "store").exists()
