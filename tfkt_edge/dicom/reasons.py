"""The one-line reasons a file or frame is skipped, in one place."""

NOT_DICOM = "not a DICOM file"
DICOMDIR = "DICOMDIR media index (the files it references are read instead)"
NOT_CT = "modality {modality} is not CT"
SECONDARY_CAPTURE = "Secondary Capture (such as a dose report screen), not a reconstructed CT image"
UNSUPPORTED_SOP = "SOP class {sop} is not CT Image Storage or Enhanced CT Image Storage"
LOCALIZER = "localizer/scout image"
NO_PIXELS = "no pixel data"
TOO_SMALL = "image too small to assess ({rows}x{columns}; at least {minimum}x{minimum} needed)"
NOT_GREYSCALE = "not a greyscale image ({detail})"
UNREADABLE = "unreadable DICOM file ({detail})"
PIXELS_UNREADABLE = "pixel data could not be decoded ({detail})"
DUPLICATE = "duplicate of SOP Instance {uid} already read from {other}"
MISSING_REFERENCE = "referenced by DICOMDIR but missing"
NOT_REGULAR = "not a regular file ({kind})"
BAD_RESCALE = "RescaleSlope/RescaleIntercept not usable ({detail})"
BAD_FRAMES = "NumberOfFrames {frames} does not match the file ({detail})"
PIXEL_SIZE = "pixel data holds {actual} bytes where Rows x Columns x frames needs {expected}"
NON_FINITE = "the model returned a non-finite score for this slice"


def one_line(exc: BaseException) -> str:
    """An exception as a short single line, for a skip reason."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


# Reasons that mean a CT slice of its series was received but could not be judged: the series is incomplete.
LOST = (PIXELS_UNREADABLE, NON_FINITE, BAD_RESCALE, PIXEL_SIZE, BAD_FRAMES, NO_PIXELS, NOT_GREYSCALE, TOO_SMALL, UNREADABLE)


def loses_slice(reason: str) -> bool:
    """Whether a skip with this reason lost a slice of a series (not a localizer, another modality, a duplicate)."""
    return any(reason.startswith(template.split("{")[0]) for template in LOST)
