"""channels_last only where it is safe: oneDNN's AVX2 kernel for the weight gradient of a narrow
stride-2 1x1 convolution in NHWC corrupts the heap (see nas.memory_format).

The reproduction runs in subprocesses with `ONEDNN_MAX_CPU_ISA=AVX2`, which makes oneDNN take
its AVX2 code paths on any x86 CPU, and one thread, where the crash is deterministic.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nas.memory_format import (
    NchwConv2d,
    has_narrow_convolution,
    onednn_runs_avx512,
    to_channels_last,
    use_channels_last,
)

TINY_SEARCH = """\
name: avx2-smoke
seed: 1
space: {blocks: 2}
strategy: {name: reinforce}
evaluator: {name: standalone, epochs: 1, batch_size: 32}
dataset: {name: synthetic, limit: 64}
network: {cells: 1, channels: 4}
budget: {architectures: 8}
samples_per_step: 2
"""
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "NAS_THREADS": "1", "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="an x86 CPU with AVX2 is needed to reach oneDNN's AVX2 kernels")


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


def test_the_training_format_follows_the_kernels_onednn_runs():
    probe = "from nas.memory_format import use_channels_last as u; import torch; " \
            "print(u(torch.device('cpu')), u(torch.device('cuda')))"
    assert run_python(probe, AVX2).stdout.split() == ["False", "True"]
    if onednn_runs_avx512():
        assert use_channels_last(torch.device("cpu"))


def test_a_tiny_standalone_search_survives_onednns_avx2_kernels(tmp_path):
    """The search that aborted in every run ("double free or corruption") before the fix."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_SEARCH)
    result = subprocess.run(
        [sys.executable, "-c", "from nas.cli import main; main()", "search", "-c", str(config),
         "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, **AVX2, "NAS_HOME": str(tmp_path / "home"), "NAS_DATABASE_URL": ""},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "finished" and summary["architectures"] == 8


def test_a_narrow_factorized_reduction_trains_under_avx2(tmp_path):
    """The layer that triggers the kernel's fault, trained by the project's loop."""
    code = """
        import torch
        from nas.data import load_dataset
        from nas.train import TrainConfig, train_model
        from searchspace.ops import OPS
        torch.set_num_threads(1)
        reduce = OPS["identity"](4, 2)  # factorized reduction: two stride-2 1x1 convs
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), reduce, torch.nn.Flatten(),
                                    torch.nn.LazyLinear(10))
        data = load_dataset("synthetic", None, limit=64)
        model(torch.zeros(1, 3, data.info.input_size, data.info.input_size))
        result = train_model(model, data, TrainConfig(epochs=3, batch_size=32))
        print("trained", len(result.history))
    """
    result = run_python(code, AVX2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["trained", "3"]


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="Linux only")
def test_avx512_detection_respects_an_isa_cap(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not onednn_runs_avx512()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert onednn_runs_avx512() == (torch.backends.cpu.get_cpu_capability() == "AVX512")


def _cell_network(channels: int, in_channels: int = 3):
    import random

    from searchspace.network import CellNetwork
    from searchspace.spaces import ENAS_OPS, SearchSpace
    torch.manual_seed(0)
    genotype = SearchSpace(ops=ENAS_OPS).sample(random.Random(0))
    return CellNetwork(genotype, cells=1, channels=channels, in_channels=in_channels,
                       reduce_inputs=True)


def test_an_image_stem_no_longer_keeps_a_network_out_of_channels_last():
    """Every RGB or grey network has a stem convolution of 3 or 1 input channels: counted as
    narrow, it kept every CIFAR and digits network (and the ENAS supernet) in NCHW."""
    cpu = torch.device("cpu")
    for image_channels in (1, 3):
        network = _cell_network(16, image_channels)
        assert has_narrow_convolution(network)  # the stem, counted without image_channels
        assert not has_narrow_convolution(network, image_channels)
        assert use_channels_last(cpu, network, image_channels) == onednn_runs_avx512()
    # a narrow cell keeps the whole network in NCHW, stem or not
    assert has_narrow_convolution(_cell_network(4), 3)
    assert not use_channels_last(cpu, _cell_network(4), 3)


def test_the_stem_computes_in_nchw_inside_a_channels_last_network():
    network = _cell_network(16)
    reference = _cell_network(16)
    to_channels_last(network, torch.device("cpu"), 3)
    stems = [module for module in network.modules() if isinstance(module, NchwConv2d)]
    assert [stem.in_channels for stem in stems] == [3]
    assert network.state_dict().keys() == reference.state_dict().keys()

    seen: list[torch.Tensor] = []
    calls = []
    original = torch.nn.Conv2d._conv_forward

    def record(module, x, weight, bias):
        calls.append((module.in_channels, x.is_contiguous(), weight.is_contiguous()))
        return original(module, x, weight, bias)

    images = torch.randn(4, 3, 32, 32)
    try:
        torch.nn.Conv2d._conv_forward = record
        stems[0].register_forward_hook(lambda module, inputs, output: seen.append(output))
        logits = network.train()(images.contiguous(memory_format=torch.channels_last))
    finally:
        torch.nn.Conv2d._conv_forward = original
    # the 3-channel convolution ran on NCHW input and weight; its output is channels_last
    assert (3, True, True) in calls
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(logits, reference.train()(images), rtol=1e-4, atol=1e-4)
    logits.sum().backward()
    assert stems[0].weight.grad is not None
