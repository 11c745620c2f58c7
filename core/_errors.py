"""Typed errors raised by the core.

Front ends map these to user messages (dashboard) or HTTP status codes (API); the
``http_status`` attribute is the suggested code. Every message is meant to be shown
to a user as is: it says what went wrong and, where possible, what to do.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class of every error the core raises on purpose."""

    http_status: int = 400


class ImageDecodeError(StudioError):
    """The bytes are not an image we can read (empty, truncated, or not an image)."""

    http_status = 400


class UnsupportedImageError(StudioError):
    """The image decodes but uses a mode or format we do not handle."""

    http_status = 415


class ImageTooLargeError(StudioError):
    """The input or the requested output exceeds the configured pixel limits."""

    http_status = 413


class UnknownModelError(StudioError):
    """No model of that name is in the catalogue or in ``weights/``."""

    http_status = 404


class UnsupportedModelError(StudioError):
    """A weights file exists but spandrel does not recognise it (or it is corrupt)."""

    http_status = 415


class WeightsMissingError(StudioError):
    """The model is known but its weights are not here; the message says how to get them.

    409 rather than 503: retrying does not help until someone adds the weights.
    """

    http_status = 409


class ConversionError(StudioError):
    """An ncnn model could not be converted to PyTorch (unexpected graph or file)."""

    http_status = 503


class DownloadError(StudioError):
    """A download of official weights failed or produced an unusable file."""

    http_status = 503


class DeviceUnavailableError(StudioError):
    """The requested device or precision is not available on this machine."""

    http_status = 400


class OutOfMemoryError(StudioError):
    """Inference ran out of device memory even with the smallest tile."""

    http_status = 503


class CancelledError(StudioError):
    """The caller cancelled the job; partial work is discarded by the caller's choice."""

    http_status = 499
