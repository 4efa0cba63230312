"""Which memory format training uses: channels_last where it is measured faster *and* safe.

channels_last (NHWC) makes CPU training steps 1.3-1.7x faster with oneDNN's AVX-512 kernels
(`bench/train_throughput.py`), but oneDNN's AVX2 kernel for the weight gradient of a stride-2
1x1 convolution in NHWC (`jit_avx2_1x1_convolution_bwd_weights`, torch 2.14.1) corrupts the
heap when that convolution has fewer than 8 input or output channels (factorized reduction in
a narrow cell): "double free or corruption", segfaults or hangs, deterministically with one
thread. Minimal reproduction: `tests/test_memory_format.py`. So the CPU uses channels_last only
when oneDNN runs its AVX-512 kernels (an AVX-512 CPU and no `ONEDNN_MAX_CPU_ISA` below it);
AVX2-only CPUs train in the default layout. CUDA always uses channels_last.

The AVX-512 kernels are not safe for narrow convolutions either: a standalone candidate of 4
channels aborted (heap corruption in backward) with 2 threads on an AVX-512 CPU
(`tests/test_registry.py`'s standalone case). So a network with any convolution of fewer than
`NARROW_CHANNELS` input or output channels trains in the default layout on the CPU, with one
exception: the stem convolutions that read the images (1 or 3 channels in, a stem's width out).
In a channels_last network they compute in NCHW (`NchwConv2d`), so no narrow convolution runs in
NHWC, and the rest of the network keeps channels_last's speed (1.2-3.1x faster CIFAR training
steps than the whole network in NCHW: docs/benchmarks.md, "Op kernels").
"""

from __future__ import annotations

import os

import torch
from torch import nn

_AVX512_ISA_PREFIXES = ("AVX512", "AVX10", "ALL", "DEFAULT")


def onednn_runs_avx512() -> bool:
    """True when oneDNN's CPU convolutions take their AVX-512 code paths in this process."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if limit and not limit.strip().upper().startswith(_AVX512_ISA_PREFIXES):
        return False
    return torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512")


NARROW_CHANNELS = 8


class NchwConv2d(nn.Conv2d):
    """A convolution computed in NCHW (its input and weight made contiguous) whose output is
    in its weight's layout: in a channels_last network, a stem's few image channels, which
    oneDNN's NHWC kernels are not trusted with. The same parameters and state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(x.contiguous(), self.weight.contiguous(), self.bias)
        if self.weight.is_contiguous():
            return out
        return out.contiguous(memory_format=torch.channels_last)


def image_convolutions(model: torch.nn.Module, image_channels: int | None
                       ) -> list[nn.Conv2d]:
    """The stem convolutions of `model`: `image_channels` (fewer than `NARROW_CHANNELS`) in, at
    least `NARROW_CHANNELS` out, ungrouped. No cell or block convolution has that shape."""
    if image_channels is None or image_channels >= NARROW_CHANNELS:
        return []
    return [module for module in model.modules()
            if type(module) in (nn.Conv2d, NchwConv2d) and module.groups == 1
            and module.in_channels == image_channels
            and module.out_channels >= NARROW_CHANNELS]


def has_narrow_convolution(model: torch.nn.Module, image_channels: int | None = None) -> bool:
    """Whether `model` has a 2-d convolution of fewer than `NARROW_CHANNELS` channels, not
    counting the stem convolutions that read `image_channels`-channel images."""
    stems = {id(module) for module in image_convolutions(model, image_channels)}
    return any(isinstance(module, torch.nn.Conv2d) and id(module) not in stems
               and min(module.in_channels, module.out_channels) < NARROW_CHANNELS
               for module in model.modules())


def use_channels_last(device: torch.device, model: torch.nn.Module | None = None,
                      image_channels: int | None = None) -> bool:
    """Whether training `model` (on `image_channels`-channel images) on `device` should use the
    channels_last memory format."""
    if device.type == "cuda":
        return True
    return (device.type == "cpu" and onednn_runs_avx512()
            and (model is None or not has_narrow_convolution(model, image_channels)))


def to_channels_last(model: torch.nn.Module, device: torch.device,
                     image_channels: int | None = None) -> torch.nn.Module:
    """`model` in channels_last; on the CPU its stem convolutions compute in NCHW."""
    if device.type == "cpu":
        for module in image_convolutions(model, image_channels):
            module.__class__ = NchwConv2d
    return model.to(memory_format=torch.channels_last)
