"""OpenAI CLIP RN50 (Radford et al. 2021), the two towers learned metrics use, read from OpenAI's
published checkpoint (a TorchScript archive, or the same weights as a plain state dict).

* Image tower: a ResNet-50 with a three-convolution stem and average pooling, anti-aliased strided
  blocks (average pooling before the strided 1x1 convolutions), and an attention pool whose query
  is the mean of all positions. CLIP-IQA scores images of any size, so the pool runs without the
  positional embedding (which fits 224x224 only), as the CLIP-IQA authors do.
* Text tower: a 12-layer causal transformer over CLIP's BPE tokens; a prompt's feature is the
  final layer norm at its end-of-text token, projected.

Both take and give float32; BatchNorm uses the checkpoint's running statistics.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as func

from .._torchscript import is_torchscript, torchscript_tensors

__all__ = ["ClipRN50", "clip_state_dict"]

_LAYERS = (3, 4, 6, 3)
_WIDTH = 64
_EMBED = 1024  # the joint embedding
_TEXT_WIDTH, _TEXT_HEADS, _TEXT_LAYERS, _CONTEXT, _VOCAB = 512, 8, 12, 77, 49408
_POOL_HEADS = 32


class _Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.stride = stride
        self.downsample = None
        if stride > 1 or inplanes != planes * 4:  # checkpoint keys downsample.0 (conv) and downsample.1 (bn)
            self.downsample = nn.Sequential()
            self.downsample.add_module("0", nn.Conv2d(inplanes, planes * 4, 1, bias=False))
            self.downsample.add_module("1", nn.BatchNorm2d(planes * 4))

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return func.avg_pool2d(x, self.stride) if self.stride > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = func.relu(self.bn1(self.conv1(x)))
        out = func.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self._pool(out)))
        identity = x if self.downsample is None else self.downsample(self._pool(x))
        return func.relu(out + identity)


class _AttentionPool(nn.Module):
    def __init__(self, dim: int, heads: int, out: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(7 * 7 + 1, dim))  # in the checkpoint; unused here
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.c_proj = nn.Linear(dim, out)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).permute(2, 0, 1)  # (HW, N, C)
        tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens], dim=0)
        out, _ = func.multi_head_attention_forward(
            query=tokens[:1], key=tokens, value=tokens, embed_dim_to_check=tokens.shape[-1],  # the mean token only
            num_heads=self.heads, in_proj_weight=None,
            in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]), bias_k=None, bias_v=None,
            add_zero_attn=False, dropout_p=0.0, out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias,
            training=False, need_weights=False, use_separate_proj_weight=True, q_proj_weight=self.q_proj.weight,
            k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight)
        return out[0]


class _Visual(nn.Module):
    def __init__(self):
        super().__init__()
        half = _WIDTH // 2
        self.conv1 = nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, _WIDTH, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(_WIDTH)
        inplanes = _WIDTH
        for index, blocks in enumerate(_LAYERS):
            planes, stride = _WIDTH * 2**index, 1 if index == 0 else 2
            layer = [_Bottleneck(inplanes, planes, stride)]
            inplanes = planes * 4
            layer += [_Bottleneck(inplanes, planes, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.attnpool = _AttentionPool(_WIDTH * 32, _POOL_HEADS, _EMBED)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = func.relu(bn(conv(x)))
        x = func.avg_pool2d(x, 2)
        for index in range(len(_LAYERS)):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.attnpool(x)


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(_TEXT_WIDTH, _TEXT_HEADS)
        self.ln_1 = nn.LayerNorm(_TEXT_WIDTH)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(_TEXT_WIDTH, _TEXT_WIDTH * 4))
        self.mlp.add_module("gelu", _QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(_TEXT_WIDTH * 4, _TEXT_WIDTH))
        self.ln_2 = nn.LayerNorm(_TEXT_WIDTH)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x: (L, N, C)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class ClipRN50(nn.Module):
    """CLIP RN50: :meth:`encode_image` (``(N, 3, H, W)``, CLIP-normalised) and :meth:`encode_text` (token ids)."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        self.visual = _Visual()
        self.token_embedding = nn.Embedding(_VOCAB, _TEXT_WIDTH)
        self.positional_embedding = nn.Parameter(torch.zeros(_CONTEXT, _TEXT_WIDTH))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(_Block() for _ in range(_TEXT_LAYERS))
        self.ln_final = nn.LayerNorm(_TEXT_WIDTH)
        self.text_projection = nn.Parameter(torch.zeros(_TEXT_WIDTH, _EMBED))
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()
                              if k in self.state_dict()})
        self.eval().requires_grad_(False)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Features of token rows (start token, BPE ids, end token, zero padding; end-of-text is the largest id)."""
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:length]
        mask = torch.full((length, length), float("-inf"), device=tokens.device).triu(1)  # causal
        x = x.transpose(0, 1)
        for block in cast(nn.Sequential, self.transformer.resblocks):
            x = block(x, mask)
        x = self.ln_final(x.transpose(0, 1))
        return x[torch.arange(len(tokens)), tokens.argmax(dim=-1)] @ self.text_projection


def clip_state_dict(path) -> dict[str, torch.Tensor]:
    """The weights of a CLIP checkpoint file: OpenAI's TorchScript archive (its tensors read without
    TorchScript, which would run the archive's code: see :mod:`core._torchscript`), or a plain state dict
    (read with ``weights_only``).

    Raises:
        ValueError: neither, or not CLIP RN50 (keys or shapes differ).
    """
    if is_torchscript(path):
        state: object = torchscript_tensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a pickle or zip error of any kind: not a checkpoint
            raise ValueError(f"{path} is neither a TorchScript archive nor a state dict ({exc}).") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors.")
    expected = {k: v.shape for k, v in _template().items()}
    wrong = [k for k, shape in expected.items() if k not in state or tuple(state[k].shape) != tuple(shape)]
    if wrong:
        raise ValueError(f"{path} is not CLIP RN50: {len(wrong)} weights are missing or of another shape "
                         f"(e.g. {wrong[0]}).")
    return {k: state[k] for k in expected}


def _template() -> dict[str, torch.Tensor]:
    """The keys and shapes of CLIP RN50 (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = nn.Module()
        model.visual = _Visual()
        model.token_embedding = nn.Embedding(_VOCAB, _TEXT_WIDTH)
        model.transformer = nn.Module()
        model.transformer.resblocks = nn.ModuleList(_Block() for _ in range(_TEXT_LAYERS))
        model.ln_final = nn.LayerNorm(_TEXT_WIDTH)
    state = model.state_dict()
    state |= {name: torch.empty(shape, device="meta") for name, shape in (
        ("positional_embedding", (_CONTEXT, _TEXT_WIDTH)), ("text_projection", (_TEXT_WIDTH, _EMBED)),
        ("logit_scale", ()))}
    return state
