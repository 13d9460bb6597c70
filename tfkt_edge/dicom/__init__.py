"""DICOM ingestion: files and folders -> ordered CT series, and reasons for the rest.

Opened in data order: `discover` (files, folders, DICOMDIR file-sets), `slices` (one file's header -> its
slices or a skip reason; `walk` reads a plain header in one pass into a `header.Header`, pydicom the rest;
`deflated` inflates within a bound), `series` (grouping and anatomical order),
`scanner` (all of it over many paths), `pixels` (decoding to stored values and HU).
"""

from __future__ import annotations

import tfkt_edge.dicom.reasons as reasons
from tfkt_edge.dicom.pixels import load_hu, load_stored
from tfkt_edge.dicom.scanner import Scanner, ScanResult, read_headers, scan
from tfkt_edge.dicom.series import Series, group_series
from tfkt_edge.dicom.slices import Skip, SliceRef, read_slices

__all__ = ["ScanResult", "Scanner", "Series", "Skip", "SliceRef", "group_series", "load_hu", "load_stored", "read_headers",
           "read_slices", "reasons", "scan"]
