"""The scanner-side service: receive CT instances (DICOM C-STORE or a watched folder), score them as
they arrive, and emit one result per series when it is complete."""
