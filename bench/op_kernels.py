"""The CPU kernels of the cell ops: each rewrite against what it replaced, in the same command.

Four changes, each compared with the code it replaced on the same inputs and weights:
- `avg_pool_3x3` (and Inception's pool branch) as a depthwise convolution of ones divided by
  the window's pixel count (`searchspace.ops.AveragePool3x3`) against torch's
  `nn.AvgPool2d(3, stride, 1, count_include_pad=False)`;
- `FactorizedReduce`'s odd path as a 1x1 convolution of the strided pixels against the stride-2
  convolution of a zero-padded, shifted full-size copy;
- the channel concatenation that ends every cell and Inception's branches
  (`searchspace.ops.concat_channels`, whose backward hands each input a dense gradient)
  against `torch.cat`, whose backward hands out strided slices of a channels-last gradient;
- glibc's allocator keeping freed memory (`nas.allocator`) against its defaults, in child
  processes that train the same network (page faults per step, peak resident memory).
The first three are timed as a training step (forward, backward, SGD) of the op alone and of
whole networks of random genotypes (ENAS's five ops and the ten-op default space), the old and
new variants interleaved round by round, on the memory format training would pick.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from _common import (
    command_line,
    cpu_text,
    machine_info,
    markdown_table,
    set_threads,
    today,
    write_section,
)
from torch import nn

import searchspace.cells
import searchspace.ops
import searchspace.supernet
from nas.allocator import SETTINGS, keep_freed_memory
from nas.memory_format import to_channels_last, use_channels_last
from searchspace.network import CellNetwork
from searchspace.ops import AveragePool3x3, FactorizedReduce, create_op
from searchspace.spaces import DEFAULT_OPS, ENAS_OPS, SearchSpace
from searchspace.supernet import Supernet
from searchspace.zoo import create_network

TITLE = "Op kernels (bench/op_kernels.py)"
SPACES = {"ENAS's five ops": ENAS_OPS, "ten ops (default space)": DEFAULT_OPS}


class PaddedFactorizedReduce(nn.Module):
    """The replaced `FactorizedReduce` forward: the odd path convolves a padded full-size copy."""

    def __init__(self, reduce: FactorizedReduce) -> None:
        super().__init__()
        self.conv_even, self.conv_odd, self.bn = reduce.conv_even, reduce.conv_odd, reduce.bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        odd = F.conv2d(shifted, self.conv_odd.weight, stride=2)
        return self.bn(torch.cat([self.conv_even(x), odd], dim=1))


def with_replaced_kernels(model: nn.Module) -> nn.Module:
    """A copy of `model` computing with the replaced kernels (same weights, same numbers)."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, AveragePool3x3):
                setattr(parent, name, nn.AvgPool2d(3, child.stride, 1, count_include_pad=False))
            elif isinstance(child, FactorizedReduce):
                setattr(parent, name, PaddedFactorizedReduce(child))
    return model


def network(space: tuple[str, ...], seed: int) -> CellNetwork:
    """The CIFAR-sized network of the ENAS evaluator's candidates, of one random genotype."""
    torch.manual_seed(seed)
    genotype = SearchSpace(ops=space).sample(random.Random(seed))
    return CellNetwork(genotype, cells=2, channels=16, reduce_inputs=True)


class Stepper:
    """Training steps of one model on one fixed batch, in the layout training picks (or in
    NCHW with `nchw`: the layout before image stems stopped counting as narrow)."""

    def __init__(self, model: nn.Module, batch: int, size: int, in_channels: int = 3,
                 nchw: bool = False) -> None:
        cpu = torch.device("cpu")
        channels_last = not nchw and use_channels_last(cpu, model, in_channels)
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = to_channels_last(model, cpu, in_channels)
        self.model = model.train()
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.images = torch.randn(batch, in_channels, size, size).to(memory_format=self.format)
        self.labels = torch.randint(0, 10, (batch,))

    def step(self) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        output = self.model(self.images)
        # a network's cross entropy; an op alone: a loss over its whole output
        loss = (F.cross_entropy(output, self.labels) if output.dim() == 2
                else output.square().mean())
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start


def compare(pairs: dict[str, tuple[Stepper, Stepper]], rounds: int, warmup: int = 2) -> dict:
    """Median step seconds of each (replaced, new) pair, interleaved round by round."""
    times = {name: ([], []) for name in pairs}
    for round_index in range(warmup + rounds):
        for name, steppers in pairs.items():
            for stepper, samples in zip(steppers, times[name], strict=True):
                seconds = stepper.step()
                if round_index >= warmup:
                    samples.append(seconds)
    return {name: {"replaced_ms": 1000 * statistics.median(old),
                   "new_ms": 1000 * statistics.median(new),
                   "speedup": statistics.median(old) / statistics.median(new)}
            for name, (old, new) in times.items()}


class OpAlone(nn.Module):
    """One op with a learnable 1x1 convolution in front, so its input needs a gradient."""

    def __init__(self, op: nn.Module, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(self.conv(x))


def op_pairs(batch: int, channels: int, size: int) -> dict[str, tuple[Stepper, Stepper]]:
    ops = {f"avg_pool_3x3, stride {stride}": OpAlone(AveragePool3x3(stride), channels)
           for stride in (1, 2)}
    ops["FactorizedReduce"] = OpAlone(FactorizedReduce(channels, channels), channels)
    return {name: (Stepper(with_replaced_kernels(op), batch, size, channels),
                   Stepper(op, batch, size, channels)) for name, op in ops.items()}


def network_pairs(batch: int, seeds: int) -> dict[str, tuple[Stepper, Stepper]]:
    pairs = {}
    for space_name, space in SPACES.items():
        for seed in range(seeds):
            model = network(space, seed)
            pairs[f"{space_name}, genotype {seed}"] = (
                Stepper(with_replaced_kernels(model), batch, 32), Stepper(model, batch, 32))
    return pairs


# ---------------------------------------------------------------------------------------------
# the channel concatenation: torch.cat against concat_channels

CONCATENATING_MODULES = (searchspace.ops, searchspace.cells, searchspace.supernet)


@contextlib.contextmanager
def torch_cat_concatenation():
    """The code before `concat_channels`: every cell and Inception module concatenates with
    `torch.cat`, whose backward hands each input a strided slice of the gradient."""
    kept = [module.concat_channels for module in CONCATENATING_MODULES]
    for module in CONCATENATING_MODULES:
        module.concat_channels = lambda tensors: torch.cat(tensors, dim=1)
    try:
        yield
    finally:
        for module, function in zip(CONCATENATING_MODULES, kept, strict=True):
            module.concat_channels = function


class TorchCatStepper(Stepper):
    """A `Stepper` whose steps concatenate with `torch.cat`."""

    def step(self) -> float:
        with torch_cat_concatenation():
            return super().step()


class SupernetPath(nn.Module):
    """The ENAS supernet of the peers' CIFAR configuration on one sampled path."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        space = SearchSpace(ops=ENAS_OPS)
        self.supernet = Supernet(space, cells=2, channels=16)
        self.genotype = space.sample(random.Random(seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.genotype)


def concatenation_pairs(batch: int, seeds: int, channels: int
                        ) -> dict[str, tuple[Stepper, Stepper]]:
    models = {"inception, stride 1 (alone)": OpAlone(create_op("inception", channels, 1),
                                                     channels)}
    for space_name, space in SPACES.items():
        for seed in range(seeds):
            models[f"{space_name}, genotype {seed}"] = network(space, seed)
    for seed in range(seeds):
        models[f"ENAS supernet, path {seed}"] = SupernetPath(seed)
    return {name: (TorchCatStepper(copy.deepcopy(model), batch, 32,
                                   channels if "alone" in name else 3),
                   Stepper(model, batch, 32, channels if "alone" in name else 3))
            for name, model in models.items()}


# ---------------------------------------------------------------------------------------------
# the layout: a whole network in NCHW against channels_last with its image stem in NCHW


def layout_pairs(batch: int, seeds: int) -> dict[str, tuple[Stepper, Stepper]]:
    models: dict[str, nn.Module] = {
        "resnet20": create_network("resnet20", num_classes=10, input_size=32, in_channels=3)}
    for space_name, space in SPACES.items():
        for seed in range(seeds):
            models[f"{space_name}, genotype {seed}"] = network(space, seed)
    for seed in range(seeds):
        models[f"ENAS supernet, path {seed}"] = SupernetPath(seed)
    return {name: (Stepper(copy.deepcopy(model), batch, 32, nchw=True), Stepper(model, batch, 32))
            for name, model in models.items()}


# ---------------------------------------------------------------------------------------------
# the allocator: child processes with and without nas.allocator's settings


def child_main(args: argparse.Namespace) -> None:
    """Train one network for `--child-steps` steps; print step time, faults and peak memory."""
    set_threads(args.threads)
    stepper = Stepper(network(SPACES[args.child_space], args.child_seed), args.batch, 32)
    for _ in range(2):
        stepper.step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = [stepper.step() for _ in range(args.child_steps)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"step_ms": 1000 * statistics.median(seconds),
                      "faults_per_step": faults / args.child_steps,
                      "max_rss_mib": high_water_mib()}))


def high_water_mib() -> float:
    """Peak resident memory of this process since exec (`ru_maxrss` keeps the parent's)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def allocator_run(args: argparse.Namespace, space: str, kept: bool) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"}
    if kept:
        env |= {name: str(value) for name, (_, value) in SETTINGS.items()}
    command = [sys.executable, __file__, "--child-steps", str(args.child_steps_count),
               "--child-space", space, "--child-seed", "0", "--batch", str(args.batch),
               "--threads", str(args.threads)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def compare_allocator(args: argparse.Namespace) -> dict:
    results = {}
    for space in SPACES:
        runs: dict[str, list[dict]] = {"defaults": [], "kept": []}
        for _ in range(args.allocator_rounds):
            for variant in runs:
                runs[variant].append(allocator_run(args, space, variant == "kept"))
        summary = {variant: {key: statistics.median(run[key] for run in samples)
                             for key in samples[0]} for variant, samples in runs.items()}
        # each round's two processes ran one after the other: the median of their ratios
        summary["speedup"] = statistics.median(
            defaults["step_ms"] / kept["step_ms"]
            for defaults, kept in zip(runs["defaults"], runs["kept"], strict=True))
        results[f"{space}, genotype 0"] = summary
    return results


# ---------------------------------------------------------------------------------------------


def layout_name(memory_format: torch.memory_format) -> str:
    return "channels_last" if memory_format == torch.channels_last else "NCHW"


def markdown(result: dict) -> str:
    kernel_rows = [[name, f"{row['replaced_ms']:.1f}", f"{row['new_ms']:.1f}",
                    f"{row['speedup']:.2f}x"]
                   for group in ("ops", "networks") for name, row in result[group].items()]
    allocator_rows = [[name, f"{row['defaults']['step_ms']:.0f}", f"{row['kept']['step_ms']:.0f}",
                       f"{row['speedup']:.2f}x", f"{row['defaults']['faults_per_step']:,.0f}",
                       f"{row['kept']['faults_per_step']:,.0f}",
                       f"{row['defaults']['max_rss_mib']:,.0f}",
                       f"{row['kept']['max_rss_mib']:,.0f}"]
                      for name, row in result["allocator"].items()]
    concatenation_rows = [[name, result["trained_in"][name], f"{row['replaced_ms']:.1f}",
                           f"{row['new_ms']:.1f}", f"{row['speedup']:.2f}x"]
                          for name, row in result["concatenation"].items()]
    layout_rows = [[name, result["trained_in"][name], f"{row['replaced_ms']:.1f}",
                    f"{row['new_ms']:.1f}", f"{row['speedup']:.2f}x"]
                   for name, row in result["layout"].items()]
    setup = result["setup"]
    thresholds = ", ".join(f"`{name}={value}`" for name, (_, value) in SETTINGS.items())
    return "\n".join([
        f"Measured {today()} with `{command_line()}` on {cpu_text(result['machine'])}, "
        f"{setup['threads']} threads, load "
        f"average {result['machine']['load_average']}, {setup['memory_format']}. A training "
        f"step (forward, backward, SGD) on one batch of {setup['batch']}, median of "
        f"{setup['rounds']} interleaved rounds; ops alone on {setup['batch']}x{setup['channels']}"
        f"x32x32 behind a 1x1 convolution; networks: 2 cells, 16 channels, the ENAS evaluator's "
        "layout, random genotypes, 32x32 inputs. \"Replaced\" is the code before the rewrite "
        "(`nn.AvgPool2d`, the padded shifted copy), on the same weights; both with "
        "`nas.allocator`'s setting, as the `nas` command runs.",
        "",
        markdown_table(["training step of", "replaced (ms)", "new (ms)", "speedup"],
                       kernel_rows, align="lrrr"),
        "",
        "The channel concatenation that ends every cell (and joins Inception's branches): "
        "`torch.cat`, whose backward hands each input a strided channel slice of the "
        "channels-last gradient (batch norm's backward then takes a path about 14x slower), "
        "against `concat_channels`, which hands out dense copies. The same models and steps as "
        "above (both with the rewritten pool and reduce); the supernet rows train the ENAS "
        "supernet of the peers' CIFAR configuration (ENAS's five ops, 2 cells per stage, width "
        "16) on one random path each.",
        "",
        markdown_table(["training step of", "trained in", "torch.cat (ms)",
                        "concat_channels (ms)", "speedup"], concatenation_rows, align="llrrr"),
        "",
        "The layout of a network of RGB images: the whole network in NCHW, as every CIFAR "
        "network trained on the CPU before (its stem convolution's 3 input channels counted as "
        "a narrow convolution, which oneDNN's NHWC kernels are not trusted with: "
        "`nas.memory_format`), against channels_last with the stem convolution alone computed "
        "in NCHW (`NchwConv2d`), as training, the ENAS supernet and the latency measurement "
        "now lay it out, where the model has no other narrow convolution.",
        "",
        markdown_table(["training step of", "now trained in", "whole network NCHW (ms)",
                        "as now trained (ms)", "speedup"], layout_rows, align="llrrr"),
        "",
        "\"Trained in\": the layout training picks for the model (`nas.memory_format`): NCHW "
        "where a convolution other than the stem has fewer than 8 channels, as Inception's "
        "4-channel branches at width 16 (both columns then run the same layout).",
        "",
        f"glibc's allocator in child processes training genotype 0 of each space "
        f"({setup['child_steps']} steps after 2 warm-up steps, medians of "
        f"{setup['allocator_rounds']} processes each, interleaved; the speedup is the median of "
        "the rounds' ratios): its defaults against "
        f"`nas.allocator`'s thresholds ({thresholds}), which the `nas` command sets for itself "
        "and its child processes.",
        "",
        markdown_table(["network", "defaults (ms)", "kept (ms)", "speedup", "faults/step, defaults",
                        "faults/step, kept", "peak MiB, defaults", "peak MiB, kept"],
                       allocator_rows, align="lrrrrrrr"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16, help="channels of the ops alone")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2, help="random genotypes per space")
    parser.add_argument("--allocator-rounds", type=int, default=5)
    parser.add_argument("--child-steps-count", type=int, default=10,
                        help="timed steps of each allocator child process")
    parser.add_argument("--no-docs", action="store_true")
    for name in ("--child-steps", "--child-seed"):
        parser.add_argument(name, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-space", choices=SPACES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_steps:
        child_main(args)
        return
    set_threads(args.threads)
    keep_freed_memory()  # the kernels are compared in the allocator setting `nas` runs with
    ops = op_pairs(args.batch, args.channels, 32)
    networks = network_pairs(args.batch, args.seeds)
    fmt = next(iter(networks.values()))[1].format
    result = {
        "setup": {"threads": args.threads, "batch": args.batch, "channels": args.channels,
                  "rounds": args.rounds, "child_steps": args.child_steps_count,
                  "allocator_rounds": args.allocator_rounds,
                  "memory_format": layout_name(fmt)},
        "machine": machine_info(),
        "ops": compare(ops, args.rounds),
    }
    result["networks"] = compare(networks, args.rounds)
    concatenation = concatenation_pairs(args.batch, args.seeds, args.channels)
    layouts = layout_pairs(args.batch, args.seeds)
    result["concatenation"] = compare(concatenation, args.rounds)
    result["layout"] = compare(layouts, args.rounds)
    # the layout training picks for each model (NCHW where a convolution is narrow)
    result["trained_in"] = {name: layout_name(steppers[1].format)
                            for name, steppers in (concatenation | layouts).items()}
    result["allocator"] = compare_allocator(args)
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(TITLE, markdown(result))


if __name__ == "__main__":
    main()
