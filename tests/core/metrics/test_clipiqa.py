"""CLIP-IQA: the same numbers as ``piq.CLIPIQA`` (and, with pyiqa's five prompt pairs, as pyiqa's formula) on a
synthetic CLIP RN50 checkpoint in OpenAI's format (a TorchScript archive with the official keys and shapes),
prompts that are CLIP's own tokens, the files found where other tools keep them, a clear message without them,
checked downloads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from core.metrics import _clipiqa
from tests.loopback import LoopbackServer

piq = pytest.importorskip("piq")
from piq.feature_extractors import clip as piq_clip  # noqa: E402


def _tokenizer():
    """CLIP's BPE tokenizer from the openai-clip package (its package __init__ needs pkg_resources: skip it)."""
    spec = importlib.util.find_spec("clip")
    if spec is None:
        pytest.skip("openai-clip is not installed")
    path = Path(spec.submodule_search_locations[0]) / "simple_tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("clip_simple_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def _tokens(prompts: list[str]) -> torch.Tensor:
    """What ``clip.tokenize`` gives: start, BPE ids, end, zero padding to 77."""
    tokenizer, out = _tokenizer(), torch.zeros(len(prompts), 77, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = [49406, *tokenizer.encode(prompt), 49407]
        out[row, : len(ids)] = torch.tensor(ids)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A seeded random CLIP RN50 (BatchNorm statistics too) saved as OpenAI saved theirs: a TorchScript archive
    with half-precision convolutions and projections."""
    torch.manual_seed(7)
    model = piq_clip.CLIP(1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    piq_clip.convert_weights(model)
    path = tmp_path_factory.mktemp("clip") / "RN50.pt"
    with pytest.warns(FutureWarning):  # TorchScript is deprecated, but it is OpenAI's format
        archive = torch.jit.trace_module(model, {"encode_text": _tokens(["a"])}, check_trace=False)
        torch.jit.save(archive, str(path))
    return path, model.state_dict()


@pytest.fixture
def clip_file(checkpoint, weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(_clipiqa, "_clips", {})
    monkeypatch.setattr(_clipiqa, "_networks", {})
    (weights_dir / "metrics").mkdir(exist_ok=True)
    target = weights_dir / "metrics" / "RN50.pt"
    target.symlink_to(checkpoint[0])
    yield target
    target.unlink()


def _reference(state: dict[str, torch.Tensor], prompts: list[str], monkeypatch: pytest.MonkeyPatch):
    """piq's CLIPIQA on the same weights, with ``prompts`` as its anchors (it downloads its tokens: given here)."""
    monkeypatch.setattr(piq.clip_iqa.clip, "load", lambda: piq_clip.build_model(dict(state)).float().eval())
    monkeypatch.setattr(piq.clip_iqa, "download_tensor", lambda url, root: _tokens(prompts))
    return piq.CLIPIQA(data_range=1.0)


def test_the_prompts_are_clips_own_tokens() -> None:
    for pairs in _clipiqa.PROMPTS.values():
        texts = [text for text, _ in pairs]
        expected = _tokens(texts)
        for row, (_, ids) in enumerate(pairs):
            assert expected[row, : len(ids) + 2].tolist() == [49406, *ids, 49407]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["clipiqa", "clipiqa-ensemble"])
def test_scores_equal_the_reference_on_a_synthetic_official_checkpoint(name: str, checkpoint, clip_file: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [text for text, _ in _clipiqa.PROMPTS[name]]
    reference = _reference(checkpoint[1], texts, monkeypatch)
    assert core.METRICS[name].ready()
    rng = np.random.default_rng(3)
    for shape in ((64, 64, 3), (72, 100, 3)):  # any size: no positional embedding
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        tensor = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        expected = float(reference(tensor).mean())  # pyiqa's formula: the mean over the pairs
        got = core.compute_metric(name, image)
        assert 0 < got < 1 and got == pytest.approx(expected, rel=1e-5), (shape, got, expected)
    grey = image[:, :, :1]
    assert core.compute_metric(name, grey) == pytest.approx(core.compute_metric(name, np.repeat(grey, 3, axis=2)))
    assert core.compute_metric(name, image.astype(np.uint16) * 257) == pytest.approx(got, rel=1e-5)
    with pytest.raises(ValueError, match="32x32"):
        core.compute_metric(name, image[:20])


def test_files_where_other_tools_keep_clip_are_used_and_wrong_ones_named(checkpoint, tmp_path: Path, weights_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_clipiqa, "_clips", {})
    monkeypatch.setattr(_clipiqa, "_networks", {})
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert not core.METRICS["clipiqa"].ready()
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(core.errors.WeightsMissingError, match=r"RN50\.pt.*--download clipiqa"):
        core.compute_metric("clipiqa", image)
    assert "clipiqa" not in core.score_images({"x": image})["x"]  # the page shows the others
    (tmp_path / "home" / ".cache" / "clip").mkdir(parents=True)
    (tmp_path / "home" / ".cache" / "clip" / "RN50.pt").symlink_to(checkpoint[0])  # openai-clip's and piq's cache
    assert core.METRICS["clipiqa"].ready() and 0 < core.compute_metric("clipiqa", image) < 1
    monkeypatch.setattr(_clipiqa, "_clips", {})
    monkeypatch.setattr(_clipiqa, "_networks", {})
    (tmp_path / "home" / ".cache" / "clip" / "RN50.pt").unlink()
    (tmp_path / "home" / ".cache" / "clip" / "RN50.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(core.errors.WeightsMissingError, match="neither a TorchScript archive nor a state dict"):
        core.compute_metric("clipiqa", image)


def test_downloads_keep_only_the_published_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "weights"
    with LoopbackServer({"/RN50.pt": b"a file that is not OpenAI's"}) as server:
        monkeypatch.setattr(_clipiqa, "_URL", server.url + "/RN50.pt")
        with pytest.raises(core.errors.DownloadError, match="not the published one"):
            _clipiqa.download_clip(weights_dir=folder)
    assert not list((folder / "metrics").iterdir())  # nothing kept, no partial file
