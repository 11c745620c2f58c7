"""MUSIQ: the preprocessing equal to the TensorFlow ops the authors' code calls, the network equal to pyiqa's
PyTorch MUSIQ (with the authors' tanh GELU) on a synthetic checkpoint in the authors' ``.npz`` format, both
checkpoint formats read into the same numbers, a clear message without weights, checked downloads."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from core.metrics import _musiq
from tests.loopback import LoopbackServer

# A script run in a child process (TensorFlow and PyTorch are kept out of each other's way): the TF ops the
# authors' preprocessing.py is made of, on the inputs given, written to an .npz.
_TF_OPS = """
import sys, numpy as np, tensorflow as tf
inputs, out = np.load(sys.argv[1]), {}
for name in inputs.files:
    kind, *size = name.split("-")
    x = inputs[name]
    if kind == "resize":  # tf.image.resize(..., method=GAUSSIAN), as resize_preserve_aspect_ratio calls it
        out[name] = tf.image.resize(x, (int(size[0]), int(size[1])), method=tf.image.ResizeMethod.GAUSSIAN).numpy()
    elif kind == "patches":  # tf.image.extract_patches, 32x32, stride 32, 'SAME'
        p = tf.image.extract_patches(x[None], [1, 32, 32, 1], [1, 32, 32, 1], [1, 1, 1, 1], padding="SAME")
        out[name] = tf.reshape(p, [-1, 32 * 32 * 3]).numpy()
    elif kind == "hash":  # TF1's resize of the 10-cell grid to a count of patches, nearest neighbour
        grid = tf.reshape(tf.range(10, dtype=tf.int32), [10, 1, 1])
        out[name] = tf.compat.v1.image.resize(grid, [int(size[0]), 1],
                                              method=tf.compat.v1.image.ResizeMethod.NEAREST_NEIGHBOR)[:, 0, 0].numpy()
np.savez(out_path := sys.argv[2], **out)
"""


def _tensorflow(inputs: dict[str, np.ndarray], tmp_path: Path) -> dict[str, np.ndarray]:
    pytest.importorskip("tensorflow")
    np.savez(tmp_path / "in.npz", **inputs)
    script = tmp_path / "tf_ops.py"
    script.write_text(_TF_OPS)
    subprocess.run([sys.executable, str(script), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], check=True,
                   capture_output=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
                                             "PATH": "/usr/bin:/bin"}, timeout=300)
    with np.load(tmp_path / "out.npz") as out:
        return {name: out[name] for name in out.files}


@pytest.mark.slow
def test_the_preprocessing_is_tensorflows(tmp_path: Path) -> None:
    rng = np.random.default_rng(26)
    inputs: dict[str, np.ndarray] = {}
    # downscales whose samples fall on pixel edges (512 -> 224, 300 -> 257), upscales, and its own size
    for (h, w), (rh, rw) in (((512, 512), (224, 224)), ((300, 448), (257, 384)), ((45, 67), (150, 224)),
                             ((256, 384), (256, 384)), ((510, 200), (384, 151))):
        inputs[f"resize-{rh}-{rw}-{h}"] = rng.uniform(-1, 1, (h, w, 3)).astype(np.float32)
    for h, w in ((45, 67), (300, 448), (64, 96)):
        inputs[f"patches-{h}-{w}"] = rng.uniform(-1, 1, (h, w, 3)).astype(np.float32)
    for count in (1, 3, 7, 10, 12, 14, 17, 64):
        inputs[f"hash-{count}"] = np.zeros(1, np.float32)
    expected = _tensorflow(inputs, tmp_path)
    for name, x in inputs.items():
        kind, *size = name.split("-")
        if kind == "resize":
            got = _musiq.gaussian_resize(torch.from_numpy(x).permute(2, 0, 1), int(size[0]), int(size[1]))
            assert np.abs(got.permute(1, 2, 0).numpy() - expected[name]).max() < 2e-6, name
        elif kind == "patches":
            patches, spatial = _musiq._patches(torch.from_numpy(x).permute(2, 0, 1))
            assert np.array_equal(patches.permute(0, 2, 3, 1).reshape(len(patches), -1).numpy(), expected[name])
            rows, cols = -(-x.shape[0] // 32), -(-x.shape[1] // 32)
            assert spatial.tolist() == [int(r) * 10 + int(c) for r in _musiq._hash(rows) for c in _musiq._hash(cols)]
        else:
            assert _musiq._hash(int(size[0])).tolist() == expected[name].tolist(), name


def _synthetic(seed: int = 26, head: float = 30.0, classes: int = 1) -> dict[str, np.ndarray]:
    """Seeded random parameters of the authors' model, under their names and shapes (``official_shapes``)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in _musiq.official_shapes(classes).items():
        scale = 1 / np.sqrt(np.prod(shape[:-1])) if name.endswith("kernel") else 0.05
        params[name] = rng.normal(0, scale, shape).astype(np.float32)
        if name.endswith("/scale"):
            params[name] = (1 + 0.1 * rng.normal(size=shape)).astype(np.float32)
    params["head/kernel"] *= head  # scores spread by tens, not tenths
    params["head/bias"][:] = 50.0 if classes == 1 else 0.0
    return params


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic checkpoint saved as the authors saved theirs: flat names under ``opt/target/``, and more."""
    path = tmp_path_factory.mktemp("musiq") / "koniq_ckpt.npz"
    np.savez(path, **{f"opt/target/{name}": value for name, value in _synthetic().items()},
             **{"opt/state/step": np.array(30000)})
    return path


def _pyiqa_musiq():
    """pyiqa's MUSIQ module alone: its package __init__ imports every metric and their dependencies, so the three
    modules the architecture needs are loaded from its folder (and ``huggingface_hub``, imported for URLs only, is
    stood in for)."""
    spec = importlib.util.find_spec("pyiqa")
    if spec is None:
        pytest.skip("pyiqa (a test-only reference) is not installed")
    root = Path(spec.submodule_search_locations[0])
    saved = {name: sys.modules.get(name) for name in ("pyiqa", "pyiqa.archs", "pyiqa.utils", "pyiqa.data",
                                                       "pyiqa.matlab_utils", "huggingface_hub")}
    try:
        for name in saved:
            if name != "huggingface_hub":
                package = types.ModuleType(name)
                package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
                sys.modules[name] = package
        sys.modules.setdefault("huggingface_hub", types.SimpleNamespace(hf_hub_url=lambda *a, **k: ""))
        importlib.import_module("pyiqa.matlab_utils.padding")
        sys.modules["pyiqa.matlab_utils"].__dict__.update(vars(sys.modules["pyiqa.matlab_utils.padding"]))
        return importlib.import_module("pyiqa.archs.musiq_arch")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _to_pyiqa(params: dict[str, np.ndarray], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The authors' parameters in pyiqa's names and layouts (written from pyiqa's module tree, not from ours)."""
    state = {}
    for key, target in model.state_dict().items():
        path, leaf = key.replace("head.0.", "head.").rsplit(".", 1)
        tf_path = path.replace("transformer_encoder.transformer.", "Transformer/").replace("transformer_encoder.",
                                                                                          "Transformer/")
        tf_path = (tf_path.replace(".norm1", "/LayerNorm_0").replace(".norm2", "/LayerNorm_2")
                   .replace(".attention", "/MultiHeadDotProductAttention_1").replace(".mlp.fc1", "/MlpBlock_3/Dense_0")
                   .replace(".mlp.fc2", "/MlpBlock_3/Dense_1").replace("block1.", "block1/unit1/").replace(".", "/"))
        if leaf == "position_emb":
            value = params["Transformer/posembed_input/pos_embedding"]
        elif leaf == "scale_emb":
            value = params["Transformer/scaleembed_input/scale_embedding"][0]
        elif key == "transformer_encoder.cls":
            value = params["Transformer/cls"]
        elif target.ndim == 4:
            value = params[f"{tf_path}/kernel"].transpose(3, 2, 0, 1)
        elif "norm" in tf_path.lower() or "/gn" in tf_path or tf_path.startswith("gn"):
            value = params[f"{tf_path}/{'scale' if leaf == 'weight' else 'bias'}"].reshape(-1)
        elif leaf == "bias":
            value = params[f"{tf_path}/bias"].reshape(-1)
        else:
            kernel = params[f"{tf_path}/kernel"]
            value = kernel.reshape(-1, kernel.shape[-1]).T if tf_path.endswith("/out") else kernel.reshape(
                kernel.shape[0], -1).T
        assert tuple(value.shape) == tuple(target.shape), key
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    return state


@pytest.mark.slow
@pytest.mark.parametrize("classes", [1, 10])  # a mean opinion score (KonIQ, SPAQ, PaQ-2-PiQ), AVA's distribution
def test_the_network_equals_pyiqas_with_the_authors_gelu_and_both_formats_read_alike(classes: int,
                                                                                     tmp_path: Path) -> None:
    arch = _pyiqa_musiq()
    reference = arch.MUSIQ(pretrained=False, num_class=classes).eval()
    for block in reference.transformer_encoder.transformer.values():
        block.mlp.act = torch.nn.GELU(approximate="tanh")  # the authors' flax.nn.gelu; pyiqa uses the exact one
    params = _synthetic(classes=classes, head=30.0 if classes == 1 else 3.0)
    npz = tmp_path / "ckpt.npz"
    np.savez(npz, **{f"opt/target/{name}": value for name, value in params.items()})
    params = _musiq.read_musiq_checkpoint(npz, classes)
    reference.load_state_dict(_to_pyiqa(params, reference))
    pth = tmp_path / "musiq_ckpt-00000000.pth"
    prefix = "module." if classes > 1 else ""  # a DataParallel state dict is read too
    torch.save({prefix + key: value for key, value in reference.state_dict().items()}, pth)
    ours, from_pth = _musiq.Musiq(params).eval(), _musiq.Musiq(_musiq.read_musiq_checkpoint(pth, classes)).eval()
    rng = np.random.default_rng(5)
    scores = []
    for shape in ((300, 448), (64, 80), (512, 384)):
        image = torch.from_numpy(rng.uniform(-1, 1, (3, *shape)).astype(np.float32))
        patches, spatial, scales = _musiq.musiq_tokens(image)
        # pyiqa's input: per token the patch as (c, h, w), then its spatial and scale indices and its mask
        packed = torch.cat([patches.reshape(len(patches), -1), spatial[:, None].float(), scales[:, None].float(),
                            torch.ones(len(patches), 1)], dim=1)
        with torch.inference_mode():
            expected = float(_pyiqa_score(reference, packed))
            got, got_pth = float(ours(patches, spatial, scales)), float(from_pth(patches, spatial, scales))
        assert got == pytest.approx(expected, abs=2e-4), shape  # float32, 14 layers: 4e-5 seen
        assert got_pth == pytest.approx(got, abs=1e-4), shape
        scores.append(got)
    assert max(scores) - min(scores) > (3.0 if classes == 1 else 0.3)  # told apart: the equality means something
    if classes > 1:
        assert all(1 < score < 10 for score in scores)
    with pytest.raises(ValueError, match="head/kernel has shape"):
        _musiq.read_musiq_checkpoint(npz, 11 - classes)  # a checkpoint of the other kind is named, not misread


def _pyiqa_score(model: torch.nn.Module, packed: torch.Tensor) -> torch.Tensor:
    """pyiqa's forward from the tokens on (its eval mode makes the tokens itself, with a bicubic resize)."""
    model.train()
    try:
        return model(packed[None])[0]
    finally:
        model.eval()


@pytest.fixture
def musiq_file(npz: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_musiq, "_networks", {})
    (weights_dir / "metrics").mkdir(exist_ok=True)
    target = weights_dir / "metrics" / "koniq_ckpt.npz"
    target.symlink_to(npz)
    yield target
    target.unlink()


def test_the_registry_scores_any_image_with_the_authors_checkpoint(musiq_file: Path) -> None:
    metric = core.METRICS["musiq"]
    assert metric.kind == core.metrics.NO_REFERENCE and metric.higher_is_better and metric.ready()
    assert "musiq" in core.METRICS.names(core.metrics.NO_REFERENCE, ready=True)
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    got = core.compute_metric("musiq", image)
    network = _musiq.Musiq(_musiq.read_musiq_checkpoint(musiq_file))
    with torch.inference_mode():
        expected = float(network(*_musiq.musiq_tokens(torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1)))
    assert got == pytest.approx(expected, abs=1e-4)
    grey = image[:, :, :1]
    assert core.compute_metric("musiq", grey) == pytest.approx(core.compute_metric("musiq", np.repeat(grey, 3, 2)))
    assert core.compute_metric("musiq", image.astype(np.uint16) * 257) == pytest.approx(got, abs=1e-4)
    assert core.score_images({"x": image})["x"]["musiq"] == pytest.approx(got, abs=1e-4)
    with pytest.raises(ValueError, match="32x32"):
        core.compute_metric("musiq", image[:20])


def test_without_weights_the_message_names_the_files_and_wrong_files_are_refused(
        npz: Path, tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_musiq, "_networks", {})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert not core.METRICS["musiq"].ready()
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(core.errors.WeightsMissingError, match=r"koniq_ckpt\.npz.*musiq_koniq_ckpt-e95806b9\.pth"):
        core.compute_metric("musiq", image)
    assert "musiq" not in core.score_images({"x": image})["x"]
    with pytest.raises(core.errors.WeightsMissingError, match="--download musiq"):
        core.metrics.check_ready(["musiq"])
    broken = dict(np.load(npz))
    broken["opt/target/embedding/kernel"] = broken["opt/target/embedding/kernel"][:100]
    (weights_dir / "metrics").mkdir(exist_ok=True)
    target = weights_dir / "metrics" / "koniq_ckpt.npz"
    np.savez(target.with_suffix(".tmp.npz"), **broken)
    target.with_suffix(".tmp.npz").replace(target)
    try:
        with pytest.raises(core.errors.WeightsMissingError, match=r"embedding/kernel has shape \(100, 384\)"):
            core.compute_metric("musiq", image)
    finally:
        target.unlink()


def test_downloads_keep_only_the_published_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "weights"
    weights = core.METRICS["musiq"].weights[0]
    assert weights.sha256.startswith("e95806b9") and weights.name.endswith("-e95806b9.pth") and weights.size
    with LoopbackServer({"/m.pth": b"a file that is not the checkpoint"}) as server:
        monkeypatch.setattr(_musiq, "_PTH_URL", server.url + "/m.pth")
        with pytest.raises(core.errors.DownloadError, match="not the published one"):
            _musiq.download_musiq(weights_dir=folder)
        # the other checkpoints' sha256 is known by the 8 hex digits their names carry: checked all the same
        with pytest.raises(core.errors.DownloadError, match="not one starting 358bb6af"):
            _musiq.download_musiq(weights_dir=folder, dataset="spaq")
    assert not list((folder / "metrics").iterdir())
    assert json.dumps(core.METRICS["musiq"].to_json())  # the registry's record of it is plain data


def test_each_checkpoint_is_its_own_metric_and_file(weights_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_musiq, "_networks", {})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    params = _synthetic(classes=10, head=3.0)
    (weights_dir / "metrics").mkdir(exist_ok=True)
    target = weights_dir / "metrics" / "ava_ckpt.npz"
    np.savez(tmp_path / "ava.npz", **{f"opt/target/{name}": value for name, value in params.items()})
    target.symlink_to(tmp_path / "ava.npz")
    try:
        assert core.METRICS["musiq-ava"].ready() and not core.METRICS["musiq-spaq"].ready()
        image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        got = core.compute_metric("musiq-ava", image)
        assert 1 < got < 10 and core.METRICS["musiq-ava"].value_range == (1.0, 10.0)  # pyiqa's mean: test above
        assert core.compute_metric("musiq-ava", image[:, ::-1].copy()) != pytest.approx(got, abs=1e-6)
        with pytest.raises(core.errors.WeightsMissingError, match=r"spaq_ckpt\.npz.*--download musiq-spaq|"
                                                                  r"--download musiq-spaq.*spaq_ckpt\.npz"):
            core.compute_metric("musiq-spaq", image)
    finally:
        target.unlink()
