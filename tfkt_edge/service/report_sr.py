"""A series result as a DICOM Basic Text SR, sent to a configured destination AE.

The SR joins the scanned study (patient and study modules as the result
carries them, read from the series' instances when they were scored: the
stored or watched files are never read again, so a file removed since cannot
hold the SR back), references every scored instance in its evidence
sequence, and states the verdict, its reason, the median score and what the
scores are (the model card's label note). It is marked UNVERIFIED: an
advisory for the technologist, not a diagnosis. It is deliberately not a Key
Object Selection "Rejected for Quality Reasons" (113001), which would make
archives hide the images. Its UIDs derive from the series and the result, so
a retried send carries the same instance and a receiver stores it once.
"""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    BasicTextSRStorage,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE

from tfkt_edge.render.document import physics_line
from tfkt_edge.render.shown import visible
from tfkt_edge.verdict.policy import OUTSIDE
from tfkt_edge.verdict.record import RunRecord

SUCCESS_OR_WARNING = {0x0000, 0xB000, 0xB006, 0xB007}
# Patient and study module attribute <- the result's study field (all Type 1 or 2: present, maybe empty).
COPIED = {"PatientName": "patient_name", "PatientID": "patient_id", "PatientBirthDate": "patient_birth_date",
          "PatientSex": "patient_sex", "StudyInstanceUID": "study_instance_uid", "StudyDate": "study_date",
          "StudyTime": "study_time", "StudyID": "study_id", "AccessionNumber": "accession_number",
          "ReferringPhysicianName": "referring_physician_name"}
TITLE = ("IQA-CT", "99TFKT", "CT image quality assessment")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _text(name: tuple[str, str, str], value: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([_code(*name)])
    item.TextValue = visible(value)[:1024]
    return item


def build_sr(event_id: int, payload: dict, now: dt.datetime | None = None) -> Dataset | None:
    """The SR of one result, or None when there is nothing to report (nothing scorable, or no study to join)."""
    record = RunRecord.from_dict(payload)
    series = record.first
    if series is None:
        return None
    study, model = series.study, record.model
    if not study.study_instance_uid:  # never from the node (it refuses such instances); nothing to join
        return None
    now = now or dt.datetime.now()
    seed = [series.series_instance_uid, str(event_id), "tfkt-edge basic text SR"]

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    for keyword, field in COPIED.items():
        setattr(ds, keyword, str(getattr(study, field, "") or ""))
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=seed + ["instance"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=seed + ["series"])
    ds.Modality = "SR"
    ds.SeriesNumber = 9901
    ds.InstanceNumber = 1
    ds.SeriesDescription = "tfkt-edge image quality"
    ds.Manufacturer = "tfkt-edge"
    ds.ManufacturerModelName = model["name"]
    ds.SoftwareVersions = str(model.get("version") or "unknown")
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.ReferencedPerformedProcedureStepSequence = Sequence()  # Type 2: no procedure step is known
    ds.PerformedProcedureCodeSequence = Sequence()  # Type 2
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"

    referenced = Sequence()
    for s in series.slices:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage if s.frame is None else EnhancedCTImageStorage
        item.ReferencedSOPInstanceUID = s.sop_instance_uid
        referenced.append(item)
    scanned = Dataset()
    scanned.SeriesInstanceUID = series.series_instance_uid
    scanned.ReferencedSOPSequence = referenced
    evidence = Dataset()
    evidence.StudyInstanceUID = study.study_instance_uid
    evidence.ReferencedSeriesSequence = Sequence([scanned])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])

    verdict = ("RESCAN ALERT: series not of diagnostic quality" if series.alert else
               "Not judged: outside the validated domain of the model" if series.status == OUTSIDE else
               "Pass: diagnostic quality")
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code(*TITLE)])
    ds.ContentSequence = Sequence([
        _text(("IQA-VERDICT", "99TFKT", "Verdict"), verdict),
        _text(("IQA-REASON", "99TFKT", "Reason"), series.reason),
        _text(("IQA-MEDIAN", "99TFKT", "Median slice score"),
              f"{_score(series.median_score)} on 0-4 (higher is better; alert below {model['threshold']:.2f}) "
              f"over {series.n_slices} slices; lowest {_score(series.min_score)}"),
        _text(("IQA-PHYSICS", "99TFKT", "Physics"), physics_line(series.noise, series.physics)),
        _text(("IQA-MODEL", "99TFKT", "Method"),
              f"{model['name']} {model.get('version', '')}, reference-free. Scores: "
              f"{model.get('labels', '')} Advisory for the technologist; not a diagnosis."),
    ])
    return ds


SR_TIMEOUT = 10.0  # seconds, for each of connecting, association, the C-STORE answer and any network read


def _score(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def parse_destination(text: str) -> tuple[str, str, int]:
    """'AE@host:port' -> (AE title, host, port)."""
    try:
        ae_title, address = text.split("@", 1)
        host, port = address.rsplit(":", 1)
        port_number = int(port)
    except ValueError:
        raise ValueError(f"SR destination must look like ARCHIVE@host:port, not {text!r}") from None
    if not 0 < len(ae_title) <= 16 or not host or not 0 < port_number < 65536:
        raise ValueError(f"SR destination must look like ARCHIVE@host:port, not {text!r}")
    return ae_title, host, port_number


class DicomSrSink:
    """Sends each result's Basic Text SR with C-STORE; a refused association or failure status is retried."""

    name = "dicom-sr"

    def __init__(self, destination: str, calling_ae: str = "TFKT"):
        self.ae_title, self.host, self.port = parse_destination(destination)
        self.calling_ae = calling_ae

    def deliver(self, event_id: int, payload: dict) -> None:
        ds = build_sr(event_id, payload)
        if ds is None:
            return
        ae = AE(ae_title=self.calling_ae)
        # Every wait bounded: a destination that black-holes connections costs at most these, not minutes.
        ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = SR_TIMEOUT
        ae.add_requested_context(BasicTextSRStorage, ExplicitVRLittleEndian)
        assoc = ae.associate(self.host, self.port, ae_title=self.ae_title)
        if not assoc.is_established:
            raise RuntimeError(f"{self.ae_title}@{self.host}:{self.port} did not accept an association")
        try:
            status = assoc.send_c_store(ds)
        finally:
            assoc.release()
        code = getattr(status, "Status", None)
        if code not in SUCCESS_OR_WARNING:
            raise RuntimeError(f"{self.ae_title} answered C-STORE with status {'none' if code is None else hex(code)}")
