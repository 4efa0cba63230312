"""Write a genotype (and optionally its trained weights) out of the project.

Formats:

- `py`: one self-contained Python module that needs only torch. It holds one class per op the
  genotype uses (their source copied from `searchspace.ops`), the normal and reduction cells
  written out block by block, the network, `build_model(num_classes=...)` and `load_weights`.
  Its modules mirror `CellNetwork`'s attribute names, so our state dicts load into it as is.
- `torchscript`: the network traced in eval mode and saved with `torch.jit.save`.
- `onnx`: `torch.onnx.export` of the same network (needs the `onnx` package).
- `state-dict`: a `.pt` state dict, the genotype JSON (`<name>.genotype.json`) and the network
  settings (`<name>.network.json`) beside it.

The exported network is the inference layout of `CellNetwork`: no auxiliary head (its weights
are dropped when loading) and no drop-path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from nas.architectures import IMAGENET_STEM_MIN_SIZE
from searchspace import ops as op_module
from searchspace.genotype import Block, Genotype, loose_ends
from searchspace.network import CellNetwork, Stem

Format = Literal["py", "torchscript", "onnx", "state-dict"]
FORMATS: tuple[str, ...] = ("py", "torchscript", "onnx", "state-dict")
SUFFIXES = {"py": ".py", "torchscript": ".pt", "onnx": ".onnx", "state-dict": ".pt"}
AUXILIARY_PREFIX = "auxiliary_head."
# The smallest input side, as for training (`--input-size`, `dataset.input_size`): digits' 8x8.
# Smaller inputs run, but the two reduction cells then halve maps of one pixel (padding only).
MIN_INPUT_SIZE = 8
_SMALLEST = (f" (inputs from {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} px: the network halves them "
             "twice)")


class ExportError(ValueError):
    """An export that cannot be written; the message says why."""


def stem_for(input_size: int) -> Stem:
    """The stem a cell network uses for `input_size` pixels (ImageNet from 128 px up)."""
    return "imagenet" if input_size >= IMAGENET_STEM_MIN_SIZE else "cifar"


@dataclass(frozen=True)
class ExportSpec:
    """What to export: a genotype and the network settings it is built with."""

    genotype: Genotype
    num_classes: int = 10
    cells: int = 2
    channels: int = 16
    in_channels: int = 3
    input_size: int = 32
    stem: Stem | None = None  # None: by input size (see `stem_for`)
    title: str = "exported cell network"

    def __post_init__(self) -> None:
        for name, least in (("num_classes", 1), ("cells", 1), ("channels", 2),
                            ("in_channels", 1), ("input_size", MIN_INPUT_SIZE)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ExportError(f"{name} must be an integer of at least {least}, got {value!r}"
                                  + (_SMALLEST if name == "input_size" else ""))

    @property
    def resolved_stem(self) -> Stem:
        return self.stem or stem_for(self.input_size)

    def build(self) -> CellNetwork:
        """The in-project network for these settings."""
        return CellNetwork(
            self.genotype, num_classes=self.num_classes, cells=self.cells,
            channels=self.channels, in_channels=self.in_channels, stem=self.resolved_stem,
        )

    def network_settings(self) -> dict[str, Any]:
        settings = asdict(self)
        settings.pop("genotype")
        settings["stem"] = self.resolved_stem
        settings["genotype_id"] = self.genotype.id
        return settings


# ---------------------------------------------------------------------------------------------
# weights


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a `.pt` file (a plain state dict, or a checkpoint with `state_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (any unreadable file is one user error)
        raise ExportError(f"cannot read weights {path}: {' '.join(str(error).split())}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"{path} does not hold a state dict of tensors")
    return {key: value for key, value in state.items() if not key.startswith(AUXILIARY_PREFIX)}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` strictly, turning a mismatch into one readable line."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()),
                     str(error))
        raise ExportError(
            f"weights {source} do not fit this network (check --cells, --channels, "
            f"--num-classes and the stem): {first[:300]}"
        ) from None


def prepared_model(spec: ExportSpec, weights: str | Path | None) -> CellNetwork:
    """The in-project network in eval mode, with `weights` loaded when given."""
    model = spec.build()
    if weights is not None:
        load_into(model, read_state_dict(weights), str(weights))
    return model.eval()


# ---------------------------------------------------------------------------------------------
# the standalone .py module

# Op classes of `searchspace.ops` that generated code may copy, each after what it needs.
_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "ReLUConvBN": (),
    "DilatedSeparableConv": (),
    "SeparableConv": ("DilatedSeparableConv",),
    "FactorizedConv": (),
    "FactorizedReduce": (),
    "Identity": (),
    "SqueezeExcitation": (),
    "SqueezeExcitationSeparableConv": ("SeparableConv", "SqueezeExcitation"),
    "InvertedResidual": (),
    "_split_channels": (),
    "InceptionBranches": ("_split_channels", "ReLUConvBN"),
}


def _op_call(op: str, stride: int) -> tuple[str, tuple[str, ...]]:
    """The constructor call for op `op` at `stride` in generated code, and the classes it uses."""
    c = "channels"
    simple: dict[str, Callable[[int], tuple[str, tuple[str, ...]]]] = {
        "conv_1x1": lambda s: (f"ReLUConvBN({c}, {c}, kernel_size=1, stride={s})", ("ReLUConvBN",)),
        "conv_3x3": lambda s: (f"ReLUConvBN({c}, {c}, kernel_size=3, stride={s})", ("ReLUConvBN",)),
        "dil_conv_3x3": lambda s: (
            f"DilatedSeparableConv({c}, {c}, kernel_size=3, stride={s}, dilation=2)",
            ("DilatedSeparableConv",)),
        "dil_conv_5x5": lambda s: (
            f"DilatedSeparableConv({c}, {c}, kernel_size=5, stride={s}, dilation=2)",
            ("DilatedSeparableConv",)),
        "conv_1x7_7x1": lambda s: (f"FactorizedConv({c}, kernel_size=7, stride={s})",
                                   ("FactorizedConv",)),
        "inception": lambda s: (f"InceptionBranches({c}, stride={s})", ("InceptionBranches",)),
        "se_sep_conv_3x3": lambda s: (
            f"SqueezeExcitationSeparableConv({c}, kernel_size=3, stride={s})",
            ("SqueezeExcitationSeparableConv",)),
        "mbconv_3x3": lambda s: (f"InvertedResidual({c}, kernel_size=3, stride={s})",
                                 ("InvertedResidual",)),
        "avg_pool_3x3": lambda s: (
            f"nn.AvgPool2d(3, stride={s}, padding=1, count_include_pad=False)", ()),
        "max_pool_3x3": lambda s: (f"nn.MaxPool2d(3, stride={s}, padding=1)", ()),
    }
    if op == "identity":
        if stride == 1:
            return "Identity()", ("Identity",)
        return f"FactorizedReduce({c}, {c})", ("FactorizedReduce",)
    for size in (3, 5, 7):
        if op == f"sep_conv_{size}x{size}":
            return (f"SeparableConv({c}, {c}, kernel_size={size}, stride={stride})",
                    ("SeparableConv",))
    if op not in simple:
        raise ExportError(f"cannot export op {op!r}: no standalone code for it")
    return simple[op](stride)


def _state_names(blocks: tuple[Block, ...]) -> list[str]:
    return ["s0", "s1"] + [f"b{index}" for index in range(len(blocks))]


def _cell_source(kind: Literal["normal", "reduction"], blocks: tuple[Block, ...]
                 ) -> tuple[str, set[str]]:
    """A cell class written out block by block, and the op classes it uses."""
    reduction = kind == "reduction"
    names = _state_names(blocks)
    used: set[str] = {"ReLUConvBN", "FactorizedReduce"}
    op_lines, forward_lines = [], []
    for index, (input_a, op_a, input_b, op_b) in enumerate(blocks):
        calls = []
        for source, op in ((input_a, op_a), (input_b, op_b)):
            stride = 2 if reduction and source < 2 else 1
            call, classes = _op_call(op, stride)
            used.update(classes)
            op_lines.append(f"{call},  # {len(op_lines)}: b{index}, on {names[source]}")
            calls.append(f"self.ops[{len(op_lines) - 1}]({names[source]})")
        forward_lines.append(f"b{index} = {calls[0]} + {calls[1]}")
    concat = [names[i] for i in loose_ends(blocks)]
    title = "Reduction" if reduction else "Normal"
    summary = "\n".join(
        [f"        b{i} = {op_a}({names[a]}) + {op_b}({names[b]})"
         for i, (a, op_a, b, op_b) in enumerate(blocks)]
        + [f"        out = concat({', '.join(concat)})"]
    )
    effect = ("halves the height and width (stride 2 on the cell inputs)"
              if reduction else "keeps the height and width")
    ops_text = textwrap.indent("\n".join(op_lines), " " * 12)
    forward_text = textwrap.indent("\n".join(forward_lines), " " * 8)
    source = f'''
class {title}Cell(nn.Module):
    """The searched {kind} cell: {effect}.

    s0 is the cell two back, s1 the previous cell (each brought to `channels` first); block i
    sums its two ops into b<i>:

{summary}
    """

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool) -> None:
        super().__init__()
        # After a reduction cell, the input two back is twice as large: halve it too.
        if reduction_prev:
            self.preprocess_prev_prev = FactorizedReduce(c_prev_prev, channels)
        else:
            self.preprocess_prev_prev = ReLUConvBN(c_prev_prev, channels, 1)
        self.preprocess_prev = ReLUConvBN(c_prev, channels, 1)
        self.ops = nn.ModuleList([  # in block order: index: block, on which state
{ops_text}
        ])
        self.out_channels = {len(concat)} * channels

    def forward(self, prev_prev: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        s0 = self.preprocess_prev_prev(prev_prev)
        s1 = self.preprocess_prev(prev)
{forward_text}
        # the loose ends: block outputs no other block reads
        return torch.cat([{", ".join(concat)}], dim=1)
'''
    return source.strip("\n"), used


def _op_sources(used: set[str]) -> str:
    ordered: list[str] = []

    def visit(name: str) -> None:
        for dependency in _DEPENDENCIES[name]:
            visit(dependency)
        if name not in ordered:
            ordered.append(name)

    for name in _DEPENDENCIES:  # a fixed order, so exports are reproducible
        if name in used:
            visit(name)
    return "\n\n\n".join(inspect.getsource(getattr(op_module, name)).strip() for name in ordered)


_STEMS = {
    "cifar": '''
        # CIFAR stem: one 3x3 convolution at full resolution.
        stem_channels = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        plan: list[tuple[int, bool]] = []  # (channels, is_reduction) of each cell''',
    "imagenet": '''
        # ImageNet stem: a stride-2 3x3 convolution, then two reduction cells (8x smaller).
        stem_channels = max(channels // 2, 8)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        plan: list[tuple[int, bool]] = [  # (channels, is_reduction) of each cell
            (max(channels // 4, 2), True),
            (max(channels // 2, 2), True),
        ]''',
}


def python_string(text: str, width: int = 88) -> str:
    """`text` as a Python string expression, escaped by `repr` (user-given text never becomes
    code): one literal, or literals of pieces of it in parentheses, each line within `width`."""
    pieces, piece = [], ""
    for character in text:
        if piece and len(repr(piece + character)) > width:
            pieces.append(piece)
            piece = ""
        piece += character
    pieces.append(piece)
    if len(pieces) == 1:
        return repr(text)
    return "(\n" + "".join(f"    {piece!r}\n" for piece in pieces) + ")"


def python_source(spec: ExportSpec, weights_file: str | None = None) -> str:
    """The standalone module for `spec`; `weights_file` (beside the module) loads by default."""
    normal, normal_ops = _cell_source("normal", spec.genotype.normal)
    reduction, reduction_ops = _cell_source("reduction", spec.genotype.reduction)
    ops_text = _op_sources(normal_ops | reduction_ops)
    stem = spec.resolved_stem
    stem_argument = "\n        stem_multiplier: int = 3," if stem == "cifar" else ""
    weights_line = (
        f"WEIGHTS: Path | None = Path(__file__).with_name({weights_file!r})"
        if weights_file else "WEIGHTS: Path | None = None  # exported without trained weights"
    )
    about = textwrap.fill(
        f"Exported from the architecture SOURCE names (below): genotype {spec.genotype.id}, "
        f"{spec.cells} normal cell(s) per stage, {spec.channels} initial channels, "
        f"{spec.in_channels} input channel(s), "
        f"{stem} stem, {spec.num_classes} classes, made for {spec.input_size}x{spec.input_size} "
        f"inputs.", width=92)
    header = f'''"""A NASNet-style cell network, written out to need only PyTorch.

{about}

    model = build_model()                 # with the exported weights, when there are any
    model = build_model(num_classes=5, weights=None)  # a fresh network, e.g. to fine-tune
    load_weights(model, "model.pt")       # any state dict of the same network
    logits = model.eval()(images)         # images: N x {spec.in_channels} x H x W

Generated by `nas export`; the module and parameter names match the project's CellNetwork,
so its state dicts load directly (the auxiliary head's weights, if any, are skipped).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = {spec.num_classes}
IN_CHANNELS = {spec.in_channels}
CELLS = {spec.cells}  # normal cells per stage
CHANNELS = {spec.channels}  # channels of the first stage's cells
INPUT_SIZE = {spec.input_size}
# what this network was exported from
SOURCE = {python_string(spec.title)}
{weights_line}'''
    network = f'''
class Network(nn.Module):
    """Stem, three stages of normal cells with a reduction cell between stages, classifier."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        cells: int = CELLS,
        channels: int = CHANNELS,
        in_channels: int = IN_CHANNELS,{stem_argument}
    ) -> None:
        super().__init__()
{_STEMS[stem].strip(chr(10))}
        for stage in range(3):  # each stage doubles the channels of the one before
            stage_channels = channels * 2**stage
            if stage > 0:
                plan.append((stage_channels, True))
            plan += [(stage_channels, False)] * cells

        self.cells = nn.ModuleList()
        c_prev_prev, c_prev, reduction_prev = stem_channels, stem_channels, False
        for cell_channels, reduction in plan:
            cell_class = ReductionCell if reduction else NormalCell
            cell = cell_class(c_prev_prev, c_prev, cell_channels, reduction_prev)
            self.cells.append(cell)
            c_prev_prev, c_prev, reduction_prev = c_prev, cell.out_channels, reduction
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev_prev = prev = self.stem(x)
        for cell in self.cells:
            prev_prev, prev = prev, cell(prev_prev, prev)
        return self.classifier(self.global_pool(prev).flatten(1))


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a `.pt` state dict (or a checkpoint holding one under "state_dict") into `model`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    state = {{key: value for key, value in state.items()
             if not key.startswith("{AUXILIARY_PREFIX}")}}
    model.load_state_dict(state)
    return model


def build_model(num_classes: int = NUM_CLASSES, weights: str | Path | None = WEIGHTS) -> Network:
    """The network; with `weights` (by default the exported ones, if any) loaded into it."""
    model = Network(num_classes=num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model


if __name__ == "__main__":
    model = build_model().eval()
    images = torch.randn(2, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        print("logits:", tuple(model(images).shape))
    print("parameters:", sum(p.numel() for p in model.parameters()))
'''
    rule = "# " + "-" * 93
    parts = [
        header, f"\n\n{rule}\n# operations\n\n\n{ops_text}",
        f"\n\n\n{rule}\n# cells\n\n\n{normal}\n\n\n{reduction}",
        f"\n\n\n{rule}\n# network\n\n{network}",
    ]
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# input size


def check_runs(model: nn.Module, spec: ExportSpec) -> None:
    """Raise ExportError unless `model` (in eval mode) runs on one image of `spec`'s size, so
    nothing is written that cannot run."""
    with torch.no_grad():
        try:
            model(torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size))
        except RuntimeError as error:
            first = next(iter(str(error).splitlines()), "")[:200]
            raise ExportError(f"the network does not run on {spec.in_channels}x{spec.input_size}"
                              f"x{spec.input_size} inputs: {first}") from None


# ---------------------------------------------------------------------------------------------
# writing


def export(
    spec: ExportSpec, output: str | Path, fmt: str = "py", weights: str | Path | None = None
) -> list[Path]:
    """Write `spec` (with `weights` when given) to `output` in `fmt`; the files written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        missing = [name for name in ("onnx", "onnxscript")
                   if importlib.util.find_spec(name) is None]
        if missing:
            raise ExportError(f"ONNX export needs the {' and '.join(missing)} package"
                              f"{'s' if len(missing) > 1 else ''}: pip install {' '.join(missing)}")
    output = Path(output)
    if output.is_dir():
        raise ExportError(f"{output} is a folder; give the path of the file to write")
    output.parent.mkdir(parents=True, exist_ok=True)
    model = prepared_model(spec, weights)  # checks the weights fit before writing anything
    example = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    check_runs(model, spec)
    if fmt == "py":
        written = [output]
        weights_file = None
        if weights is not None:
            weights_path = output.with_suffix(".pt")
            torch.save(model.state_dict(), weights_path)
            weights_file = weights_path.name
            written.append(weights_path)
        output.write_text(python_source(spec, weights_file))
        return written
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, not gone
            traced = torch.jit.trace(model, example)
            torch.jit.save(traced, str(output))
        return [output]
    if fmt == "onnx":  # a batch of 2 so the batch dimension is traced as dynamic
        batch = torch.export.Dim("batch")
        # The exporter prints progress lines on stdout: stdout is for the command's result.
        with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
            torch.onnx.export(model, (example.expand(2, -1, -1, -1),), str(output),
                              input_names=["images"], output_names=["logits"],
                              dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False)
        return [output]
    torch.save(model.state_dict(), output)
    genotype_path = output.with_name(f"{output.stem}.genotype.json")
    settings_path = output.with_name(f"{output.stem}.network.json")
    genotype_path.write_text(spec.genotype.to_json(indent=2) + "\n")
    settings_path.write_text(json.dumps(spec.network_settings(), indent=2) + "\n")
    return [output, genotype_path, settings_path]
