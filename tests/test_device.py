"""The device setting: spelling checks, resolution, and models that follow their device."""

import pytest
import torch

from loopformer.device import check_device_name, module_device, resolve_device, to_device
from loopformer.errors import ConfigError
from loopformer.train.config import TrainConfig


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_valid_names_pass(name):
    check_device_name(name)


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "", "tpu"])
def test_bad_names_list_the_choices(name):
    with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
        check_device_name(name)
    with pytest.raises(ConfigError, match="device must be one of"):
        TrainConfig(device=name)


def test_auto_is_cpu_without_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_a_missing_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU is visible; use device=cpu"):
        resolve_device("cuda")


def test_module_device_and_batches():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")  # no parameters
    batch = {"x": torch.ones(2)}
    assert to_device(batch, torch.device("cpu")) is batch  # no copy on the CPU
