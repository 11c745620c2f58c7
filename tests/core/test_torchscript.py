"""TorchScript archives (OpenAI's CLIP format) are read without TorchScript: the tensors come out as
``state_dict`` gives them, and a crafted archive runs nothing."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from core._torchscript import is_torchscript, torchscript_tensors
from core.metrics._clip import clip_state_dict


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3).half()
        self.norm = nn.BatchNorm2d(4)
        self.inner = nn.Sequential(nn.Linear(4, 2), nn.ReLU())
        self.scale = nn.Parameter(torch.randn(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x.half()).float()).mean() * self.scale


def _archive(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    model = _Net().eval()
    model.norm.running_mean.uniform_(-1, 1)
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.trace(model, torch.rand(1, 3, 8, 8)), str(path))
    return model.state_dict()


def test_an_archives_tensors_equal_its_state_dict_without_torchscript(tmp_path: Path, monkeypatch) -> None:
    expected = _archive(tmp_path / "net.pt")
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was called"))
    assert is_torchscript(tmp_path / "net.pt")
    found = torchscript_tensors(tmp_path / "net.pt")
    assert set(expected) <= set(found)
    for key, tensor in expected.items():
        assert found[key].dtype == tensor.dtype, key
        assert torch.equal(found[key], tensor), key


def _crafted(path: Path, marker: Path) -> None:
    """An archive laid out as torch.jit.save lays one out, whose data.pkl calls ``os.system`` on load."""

    class Payload:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("RN50/data.pkl", pickle.dumps({"visual": Payload()}, protocol=2))
        archive.writestr("RN50/code/__torch__.py", "")
        archive.writestr("RN50/constants.pkl", pickle.dumps(()))
        archive.writestr("RN50/version", "3\n")


def test_a_crafted_archive_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _crafted(tmp_path / "RN50.pt", marker)
    with pytest.raises(ValueError, match=r"(os|posix)\.system.*nothing in it was run"):
        torchscript_tensors(tmp_path / "RN50.pt")
    with pytest.raises(ValueError, match=r"(os|posix)\.system"):
        clip_state_dict(tmp_path / "RN50.pt")
    assert not marker.exists()
    with zipfile.ZipFile(tmp_path / "RN50.pt") as archive:  # the payload is live: a plain unpickler runs it
        pickle.loads(archive.read("RN50/data.pkl"))
    assert marker.exists()


@pytest.mark.parametrize("payload", [b"", b"PK\x03\x04 cut", pickle.dumps([1, 2, 3])])
def test_files_that_are_not_checkpoints_are_named(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "RN50.pt"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=r"RN50\.pt"):
        clip_state_dict(path)


def test_a_state_dict_list_is_refused_with_what_it_holds(tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "RN50.pt")
    with pytest.raises(ValueError, match=r"holds a list, not a state dict"):
        clip_state_dict(tmp_path / "RN50.pt")
