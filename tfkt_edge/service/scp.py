"""The DICOM side: a pynetdicom Storage SCP for CT and Enhanced CT, and Verification (C-ECHO).

Only the CT storage classes are offered at association negotiation, so a
scanner proposing any other SOP class has that presentation context
rejected; with ``allowed_callers`` set, associations from other calling AE
titles are rejected. The C-STORE handler never raises: it writes the received
bytes (as sent, not re-encoded) to the store, records the instance in the
database and only then answers success; anything it cannot understand gets a
failure status, and the server keeps serving.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import; pydicom.uid has no Verification
from pynetdicom.transport import ThreadedAssociationServer

from tfkt_edge.render.shown import visible
from tfkt_edge.service.database import Database, UidCollision
from tfkt_edge.service.store import InstanceStore, InvalidUID, instance_uids

TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLosslessSV1, JPEGLossless,
                     JPEG2000Lossless, JPEG2000, RLELossless]
STORAGE_CLASSES = {CTImageStorage: "CT Image Storage", EnhancedCTImageStorage: "Enhanced CT Image Storage"}

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
PROCESSING_FAILURE = 0x0110
DATA_SET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC210

log = logging.getLogger("tfkt_edge.service")


@dataclass
class ScpConfig:
    ae_title: str = "TFKT"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_callers: list[str] = field(default_factory=list)
    tls_cert: Path | None = None  # PEM certificate (chain) of this node; with tls_key, associations need TLS
    tls_key: Path | None = None
    tls_ca: Path | None = None  # PEM CA bundle: callers must present a certificate it signed

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS server context, or None without a certificate; raises ValueError with a one-line reason."""
        if self.tls_cert is None and self.tls_key is None:
            if self.tls_ca is not None:
                raise ValueError("--tls-ca needs --tls-cert and --tls-key")
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ValueError("--tls-cert and --tls-key go together")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use the TLS certificate {self.tls_cert} with key {self.tls_key}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        if self.tls_ca is not None:
            try:
                context.load_verify_locations(cafile=str(self.tls_ca))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot read the TLS CA bundle {self.tls_ca}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _peer(event) -> str:
    """'CALLING -> CALLED from address:port' for the audit lines: CALLED is the title the caller asked for (its
    A-ASSOCIATE-RQ), followed by this node's own where the two differ."""
    assoc = event.assoc
    try:
        requestor, acceptor = assoc.requestor, assoc.acceptor
        calling = visible(requestor.ae_title or "?")
        own = (acceptor.ae_title or "").strip()
        primitive = getattr(requestor, "primitive", None)
        asked = (getattr(primitive, "called_ae_title", None) or own or "?").strip()
        called = visible(asked) if asked == own else f"{visible(asked)} (this node is {own})"
        return f"{calling} -> {called} from {requestor.address}:{requestor.port}"
    except Exception:  # an association torn down before its peers were known
        return "an unknown peer"


def handle_rejected(event) -> None:
    """Audit: every refused association, with who asked and from where."""
    log.warning("association rejected: %s", _peer(event))


def handle_aborted(event) -> None:
    log.warning("association aborted (malformed or unexpected PDU, or the peer gave up): %s", _peer(event))


class Arrivals:
    """The series each open association has delivered, counted, so that its release can close them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_association: dict[int, Counter] = {}

    def add(self, assoc, series: str) -> None:
        with self._lock:
            self._by_association.setdefault(id(assoc), Counter())[series] += 1

    def pop(self, assoc) -> Counter:
        with self._lock:
            return self._by_association.pop(id(assoc), Counter())


def handle_released(event, arrivals: Arrivals, db: Database, received: Callable[[str], None]) -> None:
    """A scanner that sends a series in one association releases it when the series is sent: judge now.
    A series with a single instance in the association (a scanner sending instance by instance, one
    association each) waits for the quiet timeout instead, so one instance never closes its series."""
    for series, count in arrivals.pop(event.assoc).items():
        if count < 2:
            continue
        try:
            db.release_series(series)
        except Exception as exc:  # the quiet timeout still closes it
            log.warning("could not mark series %s released: %s", series, exc)
        received(series)


def handle_closed(event, arrivals: Arrivals) -> None:
    """An aborted or dropped association: its series wait for the quiet timeout (they may be incomplete)."""
    arrivals.pop(event.assoc)


def handle_echo(event, db: Database, store: InstanceStore | None = None) -> int:
    """Success only while the node can also store: a scanner's echo must not hide a full disk, a read-only
    store, nor a results database deleted or replaced under the running node."""
    problem = db.unusable()
    if problem is not None:
        log.error("C-ECHO answered with a failure: the node cannot record instances (%s)", problem)
        return PROCESSING_FAILURE
    problem = store.unwritable() if store is not None else None
    if problem is not None:
        log.error("C-ECHO answered with a failure: the node cannot store instances (%s)", problem)
        return PROCESSING_FAILURE
    return SUCCESS


def handle_store(event, store: InstanceStore, db: Database, received: Callable[[str], None], arrivals: Arrivals) -> int | Dataset:
    """Store one instance atomically and record it; return a DICOM status. Never raises."""
    calling = event.assoc.requestor.ae_title.strip() if event.assoc else ""
    try:
        ds = event.dataset
        sop_class = str(ds.get("SOPClassUID", ""))
        if sop_class != str(event.context.abstract_syntax):
            log.warning("refused instance from %s: SOPClassUID %s does not match the context", calling, sop_class)
            return DATA_SET_DOES_NOT_MATCH
        sop, series, study = instance_uids(ds)
    except InvalidUID as exc:
        log.warning("refused instance from %s: %s", calling, exc)
        return CANNOT_UNDERSTAND
    except Exception as exc:  # a dataset pydicom cannot decode
        log.warning("refused instance from %s: cannot decode the dataset (%s)", calling, type(exc).__name__)
        return CANNOT_UNDERSTAND
    path = None
    try:
        data = event.encoded_dataset()  # preamble, file meta and the dataset as received
        existed = store.path_for(study, series, sop).exists()
        path = store.write(study, series, sop, lambda f: f.write(data))  # type: ignore[attr-defined]
        db.record_instance(sop, series, study, path, calling)
    except UidCollision as exc:  # another series' instance keeps its UID; this one is not acknowledged
        log.warning("refused instance from %s: %s (series %s): a UID collision, the recorded instance is kept",
                    visible(calling), exc, series)
        if path is not None and not existed:
            path.unlink(missing_ok=True)
        return _failure(CANNOT_UNDERSTAND, "SOP Instance UID already used by another series")
    except Exception as exc:  # disk full, database locked for too long, ...
        log.error("could not store %s from %s: %s", sop, calling, exc)
        if path is not None and not existed:
            path.unlink(missing_ok=True)  # not acknowledged, so not kept: the store holds only recorded instances
        return OUT_OF_RESOURCES
    arrivals.add(event.assoc, series)
    received(series)
    return SUCCESS


def _failure(status: int, comment: str) -> Dataset:
    """A C-STORE failure status with its Error Comment (0000,0902), which storescu and PACS logs show."""
    answer = Dataset()
    answer.Status = status
    answer.ErrorComment = comment[:64]
    return answer


IDLE_CONNECT_TIMEOUT = 5.0  # from connecting to a complete A-ASSOCIATE-RQ (the ARTIM timer), and for a TLS handshake
PDU_READ_TIMEOUT = 10.0  # the longest a peer may stall in the middle of a PDU


class GuardedServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with bounds on what a peer can hold.

    pynetdicom reads a PDU with blocking ``recv`` on a socket without a timeout, and wraps a
    TLS socket with its handshake in the accept loop: a peer sending a few bytes of a PDU (or a
    header claiming 4 GB) would hold its association slot for ever, and a TLS peer that never
    says hello would stop every other connection from being accepted. Here each accepted
    socket gets a read timeout, and the TLS handshake runs in the connection's own thread,
    bounded by IDLE_CONNECT_TIMEOUT.
    """

    def get_request(self):
        client, address = self.socket.accept()
        if self.ssl_context:
            client.settimeout(IDLE_CONNECT_TIMEOUT)
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        else:
            client.settimeout(PDU_READ_TIMEOUT)
        return client, address

    def process_request_thread(self, request, client_address) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                log.warning("TLS handshake with %s:%s failed: %s", *client_address[:2], exc)
                self.shutdown_request(request)
                return
            request.settimeout(PDU_READ_TIMEOUT)
        super().process_request_thread(request, client_address)


class StorageServer:
    """The listening AE; ``start`` returns once the port is bound."""

    def __init__(self, config: ScpConfig, store: InstanceStore, db: Database, received: Callable[[str], None],
                 ssl_context: ssl.SSLContext | None = None):
        self.config, self.store = config, store
        self.ssl_context = ssl_context
        self.ae = AE(ae_title=config.ae_title)
        for sop_class in STORAGE_CLASSES:
            self.ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification)
        self.ae.require_calling_aet = list(config.allowed_callers)
        self.ae.require_called_aet = True  # an association addressed to another AE title is refused
        self.ae.maximum_associations = 16
        # A peer that connects and says nothing holds a slot until the ARTIM timer: 30 s by default, so 16
        # idle sockets would lock every scanner out. 5 s is ample for a real A-ASSOCIATE-RQ.
        self.ae.acse_timeout = IDLE_CONNECT_TIMEOUT
        arrivals = Arrivals()
        self._handlers = [(evt.EVT_C_ECHO, handle_echo, [db, store]),
                          (evt.EVT_C_STORE, handle_store, [store, db, received, arrivals]),
                          (evt.EVT_RELEASED, handle_released, [arrivals, db, received]),
                          (evt.EVT_CONN_CLOSE, handle_closed, [arrivals]),
                          (evt.EVT_REJECTED, handle_rejected), (evt.EVT_ABORTED, handle_aborted)]
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        server = self.ae.make_server((self.config.host, self.config.port), evt_handlers=self._handlers,  # type: ignore[arg-type]
                                     ssl_context=self.ssl_context, server_class=GuardedServer)
        self.ae._servers.append(server)  # as AE.start_server does: the server's shutdown removes it
        threading.Thread(target=server.serve_forever, name="dicom-accept", daemon=True).start()
        self._server = server

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server = None
