"""Write a genotype (and optionally its trained weights) out of the project.

Formats:

- `py`: one self-contained Python module that needs only torch (`nas.export_source`): the ops
  the genotype uses, the stem and the stage plan copied from their definitions in `searchspace`,
  the normal and reduction cells written out block by block, the network,
  `build_model(num_classes=...)` and `load_weights`. Its modules mirror `CellNetwork`'s
  attribute names, so our state dicts load into it as is.
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
import json
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from nas.export_source import AUXILIARY_PREFIX, UnexportableOp, header_source, module_source
from searchspace.genotype import Genotype
from searchspace.network import CellNetwork, Stem, stem_for

Format = Literal["py", "torchscript", "onnx", "state-dict"]
FORMATS: tuple[str, ...] = ("py", "torchscript", "onnx", "state-dict")
SUFFIXES = {"py": ".py", "torchscript": ".pt", "onnx": ".onnx", "state-dict": ".pt"}
# The smallest input side, as for training (`--input-size`, `dataset.input_size`): digits' 8x8.
# Smaller inputs run, but the two reduction cells then halve maps of one pixel (padding only).
MIN_INPUT_SIZE = 8
MAX_INPUT_SIZE = 2048  # beyond it one image's activations outgrow a machine's memory
# the ranges a network's settings are checked against (cells and channels as a search's config)
RANGES = {"num_classes": (1, 100_000), "cells": (1, 64), "channels": (2, 4096),
          "in_channels": (1, 64), "input_size": (MIN_INPUT_SIZE, MAX_INPUT_SIZE)}
_SMALLEST = (f" (inputs from {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} px: the network halves them "
             "twice)")


class ExportError(ValueError):
    """An export that cannot be written; the message says why."""


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
        for name, (least, most) in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not (
                    least <= value <= most):
                raise ExportError(f"{name} must be an integer from {least} to {most}, got "
                                  f"{value!r}" + (_SMALLEST if name == "input_size" else ""))

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
        reason = " ".join(str(error).split()) or type(error).__name__
        if path.stat().st_size == 0:
            reason = "the file is empty"
        raise ExportError(f"cannot read weights {path}: {reason}") from None
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
# the standalone .py module (written by nas.export_source)


def python_source(spec: ExportSpec, weights_file: str | None = None) -> str:
    """The standalone module for `spec`; `weights_file` (beside the module) loads by default."""
    header = header_source(
        genotype_id=spec.genotype.id, cells=spec.cells, channels=spec.channels,
        in_channels=spec.in_channels, num_classes=spec.num_classes,
        input_size=spec.input_size, stem=spec.resolved_stem, title=spec.title,
        weights_file=weights_file,
    )
    try:
        return module_source({"normal": spec.genotype.normal,
                              "reduction": spec.genotype.reduction}, header)
    except UnexportableOp as error:
        raise ExportError(str(error)) from None


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
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ExportError(f"cannot write {output}: a file stands where a folder of its path "
                          f"should be") from None
    model = prepared_model(spec, weights)  # checks the weights fit before writing anything
    check_runs(model, spec)
    try:
        return _write(model, spec, output, fmt, with_weights=weights is not None)
    except OSError as error:  # a full disk, a read-only folder: the path and the reason
        raise ExportError(f"cannot write {output}: {error.strerror or error}") from None


def _write(model: nn.Module, spec: ExportSpec, output: Path, fmt: str, *,
           with_weights: bool) -> list[Path]:
    example = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    if fmt == "py":
        written = [output]
        weights_file = None
        if with_weights:
            weights_path = output.with_suffix(".pt")
            torch.save(model.state_dict(), weights_path)
            weights_file = weights_path.name
            written.append(weights_path)
        output.write_text(python_source(spec, weights_file))
        return written
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, not gone
            # The trace fixes the input size (the command says which); its warnings that a
            # shape test is frozen into the trace say the same to a user, in Python frames.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, example)
            torch.jit.save(traced, str(output))
        return [output]
    if fmt == "onnx":  # a batch of 2 so the batch dimension is traced as dynamic
        # The weights inside the one file (not `external_data` beside it): it travels alone
        # (an HTTP download), and networks of this space are far from ONNX's 2 GB limit.
        batch = torch.export.Dim("batch")
        # The exporter prints progress lines on stdout: stdout is for the command's result.
        with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
            torch.onnx.export(model, (example.expand(2, -1, -1, -1),), str(output),
                              input_names=["images"], output_names=["logits"],
                              dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False,
                              external_data=False)
        return [output]
    torch.save(model.state_dict(), output)
    genotype_path = output.with_name(f"{output.stem}.genotype.json")
    settings_path = output.with_name(f"{output.stem}.network.json")
    genotype_path.write_text(spec.genotype.to_json(indent=2) + "\n")
    settings_path.write_text(json.dumps(spec.network_settings(), indent=2) + "\n")
    return [output, genotype_path, settings_path]
