"""Resolve what a user names as an architecture (zoo network, reference cell, genotype file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from searchspace.genotype import Genotype, InvalidGenotype
from searchspace.network import CellNetwork, stem_for
from searchspace.ops import OPS
from searchspace.references import REFERENCE_GENOTYPES
from searchspace.registry import UnknownName
from searchspace.zoo import create_network, list_networks


@dataclass(frozen=True)
class Architecture:
    """A named architecture: a zoo network, or a genotype built as a cell network."""

    name: str
    genotype: Genotype | None = None

    @property
    def kind(self) -> str:
        return "zoo" if self.genotype is None else "cell"

    def build(
        self, *, num_classes: int, in_channels: int, input_size: int,
        cells: int = 2, channels: int = 16, auxiliary: bool = False,
    ) -> nn.Module:
        """The network for inputs of `in_channels` x `input_size`^2 (cell knobs apply to cells).

        Cell networks use the ImageNet stem from 128 pixels up (`stem_for`).
        """
        if self.genotype is None:
            return create_network(self.name, num_classes, input_size, in_channels)
        return CellNetwork(
            self.genotype, num_classes=num_classes, cells=cells, channels=channels,
            in_channels=in_channels, stem=stem_for(input_size), auxiliary=auxiliary,
        )


def read_genotype_file(path: Path) -> Genotype:
    """A genotype JSON file; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"genotype file {path} does not exist")
    try:
        genotype = Genotype.from_json(path.read_text())
        for op in sorted(genotype.ops()):
            OPS.get_entry(op)  # an unknown op is named with the known ones
    except (InvalidGenotype, UnknownName) as error:
        raise InvalidGenotype(f"{path}: {error}") from None
    except UnicodeDecodeError:
        raise InvalidGenotype(f"{path}: not UTF-8 text, so no genotype JSON") from None
    return genotype


def resolve_architecture(spec: str) -> Architecture:
    """A zoo name, a reference genotype name, or the path of a genotype JSON file."""
    if spec in REFERENCE_GENOTYPES:
        return Architecture(spec, REFERENCE_GENOTYPES[spec])
    if spec in list_networks():
        return Architecture(spec)
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        return Architecture(path.stem, read_genotype_file(path))
    known = ", ".join([*list_networks(), *REFERENCE_GENOTYPES])
    raise ValueError(
        f"unknown architecture {spec!r}: not a zoo network, reference genotype or genotype "
        f".json file; known names: {known}"
    )


def all_architectures() -> list[Architecture]:
    """Every named architecture: the zoo, then the reference cells."""
    return [Architecture(name) for name in list_networks()] + [
        Architecture(name, genotype) for name, genotype in REFERENCE_GENOTYPES.items()
    ]
