"""Typed errors raised by the core.

Front ends map these to user messages (dashboard) or HTTP status codes (API, in
``api/app.py``). Every message is meant to be shown to a user as is: it says what went
wrong and, where possible, what to do. ``code`` is a stable machine-readable name
(the API's ``error`` field).
"""

from __future__ import annotations

__all__ = ["CancelledError", "ConfigError", "ConversionError", "DamagedFileError", "DatasetError",
           "DeviceUnavailableError", "DownloadError", "ImageDecodeError", "ImageTooLargeError", "OutOfMemoryError",
           "SettingsError", "StudioError", "UnknownModelError", "UnknownNameError", "UnsupportedImageError",
           "UnsupportedModelError", "WeightsMissingError"]


class StudioError(Exception):
    """Base class of every error the core raises on purpose."""

    code = "studio"


class ImageDecodeError(StudioError):
    """The bytes are not an image we can read (empty, truncated, or not an image)."""

    code = "image_decode"


class UnsupportedImageError(StudioError):
    """The image decodes but uses a mode or format we do not handle."""

    code = "unsupported_image"


class ImageTooLargeError(StudioError):
    """The input or the requested output exceeds the configured pixel limits."""

    code = "image_too_large"


class UnknownModelError(StudioError):
    """No model of that name is in the catalogue or in ``weights/``."""

    code = "unknown_model"


class UnsupportedModelError(StudioError):
    """A weights file exists but spandrel does not recognise it (or it is corrupt)."""

    code = "unsupported_model"


class WeightsMissingError(StudioError):
    """The model is known but its weights are not here; the message says how to get them
    (retrying does not help until someone adds them)."""

    code = "weights_missing"


class ConversionError(StudioError):
    """An ncnn model could not be converted to PyTorch (unexpected graph or file)."""

    code = "conversion"


class DownloadError(StudioError):
    """A download of official weights failed or produced an unusable file."""

    code = "download"


class DeviceUnavailableError(StudioError):
    """The requested device or precision is not available on this machine."""

    code = "device_unavailable"


class OutOfMemoryError(StudioError):
    """Inference ran out of device memory even with the smallest tile."""

    code = "out_of_memory"


class CancelledError(StudioError):
    """The caller cancelled the job; partial work is discarded by the caller's choice."""

    code = "cancelled"


class ConfigError(StudioError):
    """A degradation configuration (preset name, JSON or YAML) that cannot be used; the message
    names the file and the field."""

    code = "config"


class SettingsError(StudioError, ValueError):
    """A setting a user chose that cannot be used (a grey or channel mode, a bench engine spec).
    Also a ``ValueError``, as before it was a :class:`StudioError`."""

    code = "settings"


class UnknownNameError(StudioError, KeyError, ValueError):
    """An unknown name in a registry (a metric, an engine, an executor, a sweep parameter); the message lists the
    known ones. Also a ``KeyError`` (a lookup that failed) and a ``ValueError`` (a setting that is wrong), as these
    were raised before it was one :class:`StudioError` for every registry."""

    code = "unknown_name"

    def __str__(self) -> str:  # the message as written (a KeyError would quote it)
        return str(self.args[0]) if self.args else ""


class DatasetError(StudioError):
    """A dataset path or layout that cannot be used."""

    code = "dataset"


class DamagedFileError(StudioError):
    """A file we wrote earlier (a run's ``results.json``) that cannot be read back: truncated or edited.
    The message names the file."""

    code = "damaged_file"
