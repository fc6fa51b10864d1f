"""resolve_device: one meaning of auto and one set of accepted names for every command."""

from __future__ import annotations

import pytest
import torch

from wsl.utils.device import resolve_device


def test_smoke():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("auto", local_rank=0) == torch.device("cuda:0")
    assert resolve_device("cuda", local_rank=torch.cuda.device_count()) == torch.device("cuda:0")
    count = torch.cuda.device_count()
    with pytest.raises(ValueError, match=rf"device 'cuda:{count}' requested but this machine has {count} CUDA"):
        resolve_device(f"cuda:{count}")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CPU", "mps", "cuda:0:1", "", "cpu:0"])
def test_exception(name):
    with pytest.raises(ValueError, match=rf"unknown device '{name}': expected auto, cpu, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda(name):
    with pytest.raises(ValueError, match=rf"device '{name}' requested but CUDA is not available"):
        resolve_device(name)


def test_config_names():
    """Both tools' configs refuse a device name no machine accepts, naming the key."""
    from wsl.utils.device import check_device_name
    from wsl_image.config import TrainConfig
    from wsl_video.config import RunConfig

    for name in ("auto", "cpu", "cuda", "cuda:3"):
        check_device_name(name)
    with pytest.raises(ValueError, match=r"^device must be auto, cpu, cuda or cuda:N, got 'gpu'$"):
        TrainConfig(device="gpu")
    config = RunConfig()
    config.train.device = "cuda0"
    with pytest.raises(ValueError, match=r"^train\.device must be auto, cpu, cuda or cuda:N, got 'cuda0'$"):
        config.resolved()
