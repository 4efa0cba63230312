"""Size and cost of a network: parameters and multiply-adds (FLOPs as the field quotes them)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of parameters of `model` (trainable ones by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of a single input of `input_shape` (C, H, W).

    Counted by `torch.utils.flop_counter` in eval mode (so auxiliary heads and drop-path are off),
    divided by two: papers (NASNet, MobileNet) quote multiply-adds, not floating-point operations.
    """
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        example = torch.zeros((1, *input_shape), device=device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(example)
        return counter.get_total_flops() // 2
    finally:
        model.train(was_training)
