"""bnbook.torchvision_source: torchvision's own FrozenBatchNorm2d, run from its wheel."""

import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from bnbook import torchvision_source


def test_frozen_batch_norm_is_torchvisions_and_computes_eval_mode_batch_norm():
    frozen_cls = torchvision_source.frozen_batch_norm_2d()
    assert frozen_cls.__name__ == "FrozenBatchNorm2d"
    assert frozen_cls.__module__ == "torchvision.ops.misc"
    bn = nn.BatchNorm2d(5, eps=1e-3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        bn.train()(3 * torch.randn(16, 5, 4, 4, generator=gen) + 2)  # running statistics
        bn.weight.uniform_(0.5, 2, generator=gen)
        bn.bias.uniform_(-1, 1, generator=gen)
    frozen = frozen_cls(5, eps=1e-3)
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped
    assert list(frozen.parameters()) == []
    assert set(frozen.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    x = torch.randn(3, 5, 4, 4, generator=gen)
    torch.testing.assert_close(frozen.train()(x), bn.eval()(x))
    assert repr(frozen) == "FrozenBatchNorm2d(5, eps=0.001)"


def test_the_source_comes_from_the_pinned_wheel():
    wheel = torchvision_source.wheel_path()
    assert f"torchvision-{torchvision_source.TORCHVISION_VERSION}-" in wheel.name
    misc = torchvision_source.source("torchvision/ops/misc.py", wheel)
    code = torchvision_source.definition(misc, "FrozenBatchNorm2d")
    assert code.startswith("class FrozenBatchNorm2d(torch.nn.Module):")
    assert "def forward(self, x: Tensor) -> Tensor:" in code
    with pytest.raises(LookupError, match="no top-level definition"):
        torchvision_source.definition(misc, "NoSuchClass")


def test_a_missing_wheel_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup"):
        torchvision_source.wheel_path(tmp_path, fetch=False)


def test_a_missing_wheel_is_downloaded_where_it_is_looked_for(tmp_path, monkeypatch):
    """A downloaded chapter run outside the book's venv fetches the wheel on first use."""
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        (dest / f"torchvision-{torchvision_source.TORCHVISION_VERSION}-x.whl").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(torchvision_source.subprocess, "run", fake_pip)
    wheel = torchvision_source.wheel_path(tmp_path / "wheels")
    assert wheel.parent == tmp_path / "wheels" and len(calls) == 1
    assert f"torchvision=={torchvision_source.TORCHVISION_VERSION}" in calls[0]


def test_a_failed_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip cannot reach any index
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(RuntimeError, match="Connect to the package index"):
        torchvision_source.wheel_path(tmp_path / "wheels")
