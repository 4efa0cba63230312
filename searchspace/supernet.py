"""The ENAS supernet: one set of weights for every (cell, block, side, op) of a space.

`Supernet.forward(x, genotype)` runs only the sampled path. Reduction cells are built the ENAS
way: both cell inputs are factorized-reduced first and every op runs at stride 1, so each op
has one set of weights whatever input it reads. A cell's output (the concatenated loose ends)
has a different width for each genotype, so the 1x1 layers that read it (the next cells'
preprocessing, the classifier) hold weights for every block's channels and use the columns of
the blocks that are concatenated, as ENAS's final convolution does.

`extract_network(supernet, genotype)` builds the standalone `CellNetwork` of that genotype
(`reduce_inputs=True`) with the shared weights copied in: its outputs equal the supernet's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchspace.genotype import Block, Genotype, InvalidGenotype, loose_ends
from searchspace.network import CellNetwork, cifar_stem, stage_plan
from searchspace.ops import (
    FactorizedReduce,
    ReLUConvBN,
    concat_channels,
    create_op,
    reduce_by_two,
)
from searchspace.spaces import SearchSpace

Columns = torch.Tensor | None  # input channels in use (None: all of them)


class SlicedReLUConvBN(nn.Module):
    """ReLU, 1x1 convolution over the input channels in use, batch norm."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, columns: Columns) -> torch.Tensor:
        weight = self.conv.weight if columns is None else self.conv.weight[:, columns]
        return self.bn(F.conv2d(F.relu(x), weight))

    def copy_to(self, target: ReLUConvBN, columns: Columns) -> None:
        conv, bn = target[1], target[2]
        conv.weight.copy_(self.conv.weight if columns is None else self.conv.weight[:, columns])
        bn.load_state_dict(self.bn.state_dict())


class SlicedFactorizedReduce(nn.Module):
    """`FactorizedReduce` over the input channels in use."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.reduce = FactorizedReduce(c_in, c_out)

    def forward(self, x: torch.Tensor, columns: Columns) -> torch.Tensor:
        even, odd = self.reduce.conv_even.weight, self.reduce.conv_odd.weight
        if columns is not None:
            even, odd = even[:, columns], odd[:, columns]
        return self.reduce.bn(reduce_by_two(F.relu(x), even, odd))

    def copy_to(self, target: FactorizedReduce, columns: Columns) -> None:
        for name in ("conv_even", "conv_odd"):
            weight = getattr(self.reduce, name).weight
            getattr(target, name).weight.copy_(weight if columns is None else weight[:, columns])
        target.bn.load_state_dict(self.reduce.bn.state_dict())


class SharedCell(nn.Module):
    """Every op of every block and side of one cell position, run along a sampled path."""

    def __init__(
        self, space: SearchSpace, c_prev_prev: int, c_prev: int, channels: int,
        *, reduction: bool, reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.preprocess_prev_prev = (
            SlicedFactorizedReduce(c_prev_prev, channels) if reduction_prev
            else SlicedReLUConvBN(c_prev_prev, channels)
        )
        self.preprocess_prev = SlicedReLUConvBN(c_prev, channels)
        self.input_reducers = (
            nn.ModuleList(FactorizedReduce(channels, channels) for _ in range(2))
            if reduction else None
        )
        self.candidates = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleDict({op: create_op(op, channels, 1) for op in space.ops})
                for _side in range(2)
            )
            for _block in range(space.blocks)
        )

    def forward(
        self, prev_prev: torch.Tensor, prev: torch.Tensor, blocks: tuple[Block, ...],
        columns_prev_prev: Columns, columns_prev: Columns,
    ) -> torch.Tensor:
        states = [self.preprocess_prev_prev(prev_prev, columns_prev_prev),
                  self.preprocess_prev(prev, columns_prev)]
        if self.input_reducers is not None:
            states = [reduce(state) for reduce, state in zip(self.input_reducers, states,
                                                              strict=True)]
        for index, (input_a, op_a, input_b, op_b) in enumerate(blocks):
            sides = self.candidates[index]
            states.append(sides[0][op_a](states[input_a]) + sides[1][op_b](states[input_b]))
        return concat_channels([states[i] for i in loose_ends(blocks)])

    def output_columns(self, blocks: tuple[Block, ...]) -> torch.Tensor:
        """Channels of this cell's full output that a genotype's concatenation fills."""
        return torch.cat([
            torch.arange((state - 2) * self.channels, (state - 1) * self.channels)
            for state in loose_ends(blocks)
        ])


class Supernet(nn.Module):
    """Shared weights of a space's cell networks (CIFAR stem, 3 stages of `cells` cells)."""

    def __init__(
        self, space: SearchSpace, *, num_classes: int = 10, cells: int = 2, channels: int = 16,
        in_channels: int = 3, stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        self.space = space
        self.num_classes, self.cells_per_stage, self.channels = num_classes, cells, channels
        self.in_channels, self.stem_multiplier = in_channels, stem_multiplier
        stem_channels = stem_multiplier * channels
        self.stem = cifar_stem(in_channels, stem_channels)
        self.cells = nn.ModuleList()
        c_prev_prev, c_prev, reduction_prev = stem_channels, stem_channels, False
        for cell_channels, reduction in stage_plan(cells, channels):
            self.cells.append(SharedCell(space, c_prev_prev, c_prev, cell_channels,
                                         reduction=reduction, reduction_prev=reduction_prev))
            c_prev_prev, c_prev = c_prev, cell_channels * space.blocks
            reduction_prev = reduction
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        self.space.validate(genotype)
        prev_prev = prev = self.stem(x)
        columns_prev_prev = columns_prev = None
        for cell in self.cells:
            blocks = genotype.reduction if cell.reduction else genotype.normal
            output = cell(prev_prev, prev, blocks, columns_prev_prev, columns_prev)
            prev_prev, prev = prev, output
            columns_prev_prev, columns_prev = columns_prev, cell.output_columns(blocks)
        pooled = F.adaptive_avg_pool2d(prev, 1).flatten(1)
        return F.linear(pooled, self.classifier.weight[:, columns_prev], self.classifier.bias)

    def path_parameters(self, genotype: Genotype) -> int:
        """Parameters of `genotype`'s standalone network, counted without building it."""
        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        total = count(self.stem) + self.classifier.bias.numel()
        width_prev_prev = width_prev = self.stem[0].out_channels
        for cell in self.cells:
            blocks = genotype.reduction if cell.reduction else genotype.normal
            for preprocess, width in ((cell.preprocess_prev_prev, width_prev_prev),
                                      (cell.preprocess_prev, width_prev)):
                convs = [m for m in preprocess.modules() if isinstance(m, nn.Conv2d)]
                norms = [m for m in preprocess.modules() if isinstance(m, nn.BatchNorm2d)]
                total += sum(conv.out_channels * width for conv in convs) + sum(map(count, norms))
            if cell.input_reducers is not None:
                total += count(cell.input_reducers)
            for index, (_, op_a, _, op_b) in enumerate(blocks):
                total += count(cell.candidates[index][0][op_a])
                total += count(cell.candidates[index][1][op_b])
            width_prev_prev, width_prev = width_prev, cell.channels * len(loose_ends(blocks))
        return total + self.classifier.out_features * width_prev

    def standalone(self, genotype: Genotype) -> CellNetwork:
        """An untrained `CellNetwork` of `genotype` in the supernet's layout."""
        return CellNetwork(
            genotype, num_classes=self.num_classes, cells=self.cells_per_stage,
            channels=self.channels, in_channels=self.in_channels,
            stem_multiplier=self.stem_multiplier, reduce_inputs=True,
        )


@torch.no_grad()
def extract_network(supernet: Supernet, genotype: Genotype) -> CellNetwork:
    """The standalone network of `genotype` starting from the supernet's shared weights."""
    try:
        supernet.space.validate(genotype)
    except InvalidGenotype as error:
        raise InvalidGenotype(f"the supernet cannot build this genotype: {error}") from None
    network = supernet.standalone(genotype)
    network.stem.load_state_dict(supernet.stem.state_dict())
    columns_prev_prev = columns_prev = None
    for shared, cell in zip(supernet.cells, network.cells, strict=True):
        blocks = genotype.reduction if shared.reduction else genotype.normal
        shared.preprocess_prev_prev.copy_to(cell.preprocess_prev_prev, columns_prev_prev)
        shared.preprocess_prev.copy_to(cell.preprocess_prev, columns_prev)
        if shared.input_reducers is not None:
            cell.input_reducers.load_state_dict(shared.input_reducers.state_dict())
        for index, (_, op_a, _, op_b) in enumerate(blocks):
            for side, op in ((0, op_a), (1, op_b)):
                cell.ops[2 * index + side].load_state_dict(
                    shared.candidates[index][side][op].state_dict()
                )
        columns_prev_prev, columns_prev = columns_prev, shared.output_columns(blocks)
    network.classifier.weight.copy_(supernet.classifier.weight[:, columns_prev])
    network.classifier.bias.copy_(supernet.classifier.bias)
    return network
