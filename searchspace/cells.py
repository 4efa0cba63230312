"""A fixed cell built from one cell of a genotype, with drop-path on its ops."""

from __future__ import annotations

import torch
from torch import nn

from searchspace.genotype import Block, loose_ends
from searchspace.ops import (
    FactorizedReduce,
    Identity,
    ReLUConvBN,
    concat_channels,
    create_op,
)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole examples of `x` with probability `drop_prob`, rescaling the rest (NASNet)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class Cell(nn.Module):
    """A NASNet cell: two preprocessed inputs, a chain of two-op blocks, loose ends concatenated.

    `reduction` halves the spatial size: ops reading a cell input use stride 2 (NASNet), or,
    with `reduce_inputs` (ENAS), both inputs are factorized-reduced first and every op runs at
    stride 1, so a weight-sharing supernet can share each op whatever input it reads.
    `reduction_prev` says the input two back is twice as large and must be reduced first.
    """

    def __init__(
        self,
        blocks: tuple[Block, ...],
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        *,
        reduction: bool,
        reduction_prev: bool,
        reduce_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.blocks = blocks
        self.preprocess_prev_prev = (
            FactorizedReduce(c_prev_prev, channels)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1)
        )
        self.preprocess_prev = ReLUConvBN(c_prev, channels, 1)
        self.input_reducers = (
            nn.ModuleList(FactorizedReduce(channels, channels) for _ in range(2))
            if reduction and reduce_inputs else None
        )
        self.ops = nn.ModuleList()
        for input_a, op_a, input_b, op_b in blocks:
            for source, op in ((input_a, op_a), (input_b, op_b)):
                stride = 2 if reduction and not reduce_inputs and source < 2 else 1
                self.ops.append(create_op(op, channels, stride))
        self.concat = loose_ends(blocks)
        self.out_channels = channels * len(self.concat)

    def forward(
        self, prev_prev: torch.Tensor, prev: torch.Tensor, drop_prob: float = 0.0
    ) -> torch.Tensor:
        states = [self.preprocess_prev_prev(prev_prev), self.preprocess_prev(prev)]
        if self.input_reducers is not None:
            states = [reduce(state) for reduce, state in zip(self.input_reducers, states,
                                                              strict=True)]
        for index, (input_a, _, input_b, _) in enumerate(self.blocks):
            op_a, op_b = self.ops[2 * index], self.ops[2 * index + 1]
            states.append(
                self._run_op(op_a, states[input_a], drop_prob)
                + self._run_op(op_b, states[input_b], drop_prob)
            )
        return concat_channels([states[i] for i in self.concat])

    def _run_op(self, op: nn.Module, x: torch.Tensor, drop_prob: float) -> torch.Tensor:
        out = op(x)
        if self.training and not isinstance(op, Identity):
            out = drop_path(out, drop_prob)
        return out
