"""`SearchConfig`: one schema for YAML files, CLI flags and the REST API.

Every field is checked when the config is built, so a bad config fails before anything is
written to the store; the error names the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nas.data import DATASETS
from nas.objective import objective_reward, uses_latency, uses_multiply_adds, uses_params
from nas.paths import datasets_dir
from nas.seeding import Seed
from nas.strict_numbers import StrictNumbers
from nas.strict_yaml import load_yaml
from searchspace.genotype import CELL_NAMES
from searchspace.spaces import DEFAULT_OPS, ENAS_OPS, SearchSpace


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the file or field."""


class _Section(StrictNumbers):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # JSON has no inf or nan


def nul_characters(data: Any, where: str = "") -> str | None:
    """The path (`a.b.0`) of the first string in `data` (keys included) that holds a NUL
    character, which text columns (PostgreSQL) cannot store; None when there is none."""
    if isinstance(data, str):
        return (where or "value") if "\x00" in data else None
    items: Any = ()
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    for key, value in items:
        path = f"{where}.{key}" if where else str(key)
        if isinstance(key, str) and "\x00" in key:
            return path
        if found := nul_characters(value, path):
            return found
    return None


class SpaceConfig(_Section):
    kind: Literal["nasnet_cell"] = "nasnet_cell"
    ops: list[str] = Field(default_factory=lambda: list(DEFAULT_OPS))
    blocks: int = Field(5, ge=1, le=10)
    cells: list[str] = Field(default_factory=lambda: list(CELL_NAMES))

    def build(self) -> SearchSpace:
        return SearchSpace(ops=tuple(self.ops), blocks=self.blocks, cells=tuple(self.cells))

    @model_validator(mode="after")
    def _space_is_valid(self) -> SpaceConfig:
        self.build()
        return self


class StrategyConfig(BaseModel):
    """A strategy name; every other key is an option of that strategy."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str = "reinforce"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EvaluatorConfig(_Section):
    """How candidates are scored: `enas` (shared weights), `standalone` (each trained from
    scratch) or `synthetic` (a hidden target genotype, no training; for tests and benchmarks)."""

    name: Literal["standalone", "enas", "synthetic"] = "enas"
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(0.05, gt=0, description="SGD, standalone candidates")
    weight_decay: float = Field(3e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0)
    micro_batch: int | None = Field(
        None, ge=1, description="train on each batch a part of this many examples at a time, "
        "adding up their gradients into one step: training memory shrinks with it, and batch "
        "norm computes its statistics per part (nas.micro_batches); None: whole batches"
    )
    # standalone
    epochs: int = Field(3, ge=1, description="training epochs per candidate (proxy budget)")
    reward_epochs: int = Field(1, ge=1, description="reward = best val accuracy of the last k")
    # synthetic
    synthetic_seconds: float = Field(
        0.0, ge=0, le=60, description="synthetic: seconds each candidate takes (tests time)"
    )
    # enas
    supernet_learning_rate: float = Field(
        0.01, gt=0, description="Adam, cosine-annealed over the planned supernet epochs"
    )
    steps_per_epoch: int = Field(5, ge=1, description="controller steps per supernet epoch")
    warmup_epochs: int = Field(
        10, ge=0, description="supernet epochs on uniformly sampled paths before step 0"
    )
    fixed_topology_epochs: int | None = Field(
        None, ge=0, description="enas: in the first k supernet epochs, the uniformly drawn "
        "paths keep the inputs of one genotype drawn from the seed and vary only their ops; "
        "then their inputs vary too (the ops learn before every topology asks for them: "
        "docs/benchmarks.md); default: half of warmup_epochs; 0: off"
    )
    training_paths: Literal["strategy", "uniform"] | None = Field(
        None, description="enas: where a supernet minibatch's path comes from after the "
        "warm-up: asked of the strategy (and abandoned after its minibatch) or drawn uniformly; "
        "default: the strategy when it is reinforce (ENAS's controller), else uniform"
    )
    path_sampling: Literal["uniform", "fair"] = Field(
        "uniform", description="enas: the uniformly drawn paths of a supernet minibatch: one "
        "path (ENAS), or 'fair': as many paths as ops, which together use every op of every "
        "block once, one step on their mean loss (FairNAS); a step costs one pass per "
        "op, and the ten-op supernet learns where one path a step stalls (docs/benchmarks.md)"
    )
    score_by: Literal["accuracy", "loss"] = Field(
        "loss", description="enas: what the search's scoring of each candidate on its "
        "validation batches rewards: the cross-entropy (the objective applied to exp(-loss); "
        "`metrics.batch_loss` keeps it beside the accuracy) or the accuracy; the loss ranked "
        "CIFAR cells closer to their standalone training (docs/benchmarks.md)"
    )
    score_batches: int = Field(
        4, ge=1, le=64, description="enas: validation batches each candidate of the search is "
        "scored on (its accuracy and loss over all of them); k batches cost k forward passes"
    )
    score_on: Literal["own", "shared"] = Field(
        "shared", description="enas: the validation batches of the search's scoring: every "
        "candidate scored between two supernet epochs the same ones, the next ones at each "
        "epoch ('shared': candidates compared on the same images), or each candidate the next "
        "ones of the split in turn ('own'). The defaults (4 shared batches, by the loss) ranked "
        "CIFAR cells closest to their standalone training, and their searches derived better "
        "cells than 'own', 1, 'accuracy' (ENAS's), at 4x the scoring (docs/benchmarks.md)"
    )
    derive_samples: int = Field(32, ge=1, description="candidates sampled at the end")
    derive_by: Literal["accuracy", "loss"] = Field(
        "accuracy", description="enas: what derivation ranks its candidates by on the whole "
        "validation split under the shared weights: the accuracy, or the cross-entropy (the "
        "objective applied to exp(-loss), which is then the derived cells' reward); the loss "
        "ranked 32 CIFAR cells closer to their standalone training on four supernets, 64 "
        "digits cells no closer (docs/benchmarks.md)"
    )
    derive_top: int = Field(3, ge=1, description="best of those kept as 'derived'")
    retrain_top: int = Field(
        0, ge=0, description="best derived cells also trained from scratch (standalone proxy "
        "budget: `epochs`, `learning_rate`); their weights are what `nas export best` writes; "
        "this training comes on top of budget.seconds"
    )
    # standalone candidates in a process of their own (set either to turn it on)
    timeout_seconds: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="a candidate with no result after this "
        "many seconds is stopped and recorded FAIL (timeout); the search goes on"
    )
    memory_limit_mb: int | None = Field(
        None, ge=64, description="memory a candidate may allocate on top of its worker "
        "process; beyond it the candidate ends FAIL (out of memory); the search goes on"
    )

    @property
    def topology_warmup_epochs(self) -> int:
        """`fixed_topology_epochs`, or its default: half of the warm-up."""
        if self.fixed_topology_epochs is not None:
            return self.fixed_topology_epochs
        return self.warmup_epochs // 2


class DatasetConfig(_Section):
    name: str = "digits"
    path: str | None = None
    id: str | None = Field(None, pattern=r"^[0-9a-f]{16}$",
                           description="an uploaded dataset (`POST /api/v1/datasets`)")
    valid_fraction: float = Field(0.2, gt=0, lt=1)
    limit: int | None = Field(None, ge=2)
    input_size: int | None = Field(None, ge=8, le=2048)

    @model_validator(mode="after")
    def _known_dataset(self) -> DatasetConfig:
        if self.name.lower() not in DATASETS:
            raise ValueError(f"unknown dataset {self.name!r}; choose one of {', '.join(DATASETS)}")
        if self.id is not None and self.path is not None:
            raise ValueError("give the dataset's path or the id of an uploaded one, not both")
        return self

    def resolved_path(self) -> Path | None:
        """The dataset's folder: `path`, or the uploaded dataset's folder for `id`."""
        if self.id is not None:
            return datasets_dir() / self.id
        return Path(self.path) if self.path else None


class NetworkConfig(_Section):
    """The proxy network candidates are built as during search."""

    cells: int = Field(1, ge=1, le=64, description="normal cells per stage")
    channels: int = Field(8, ge=2, le=4096)


class BudgetConfig(_Section):
    """Stop after `architectures` candidates or `seconds`, whichever comes first. A budget that
    gives only `seconds` has no architecture cap."""

    architectures: int | None = Field(20, gt=0)
    seconds: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _seconds_alone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "seconds" in data and "architectures" not in data:
            return data | {"architectures": None}
        return data

    @model_validator(mode="after")
    def _some_budget(self) -> BudgetConfig:
        if self.architectures is None and self.seconds is None:
            raise ValueError("give a budget: architectures, seconds or both")
        return self


class ObjectiveConfig(_Section):
    """Reward = accuracy, times (params / params_target) ** params_weight,
    (multiply_adds / multiply_adds_target) ** multiply_adds_weight and
    (latency_ms / latency_target_ms) ** latency_weight where a target is set
    (`nas.objective`); every evaluator applies it."""

    metric: Literal["val_accuracy"] = "val_accuracy"
    params_target: int | None = Field(None, gt=0)
    params_weight: float = Field(-0.07, le=0)
    multiply_adds_target: int | None = Field(None, gt=0, description="per input image")
    multiply_adds_weight: float = Field(-0.07, le=0)
    latency_target_ms: float | None = Field(
        None, gt=0, description="milliseconds of one forward pass at batch 1 on the search's "
        "device")
    latency_weight: float = Field(-0.07, le=0)

    def reward(self, accuracy: float, params: int | None, multiply_adds: int | None = None,
               latency_ms: float | None = None) -> float | None:
        """`nas.objective.objective_reward` under this objective."""
        return objective_reward(self, accuracy, params, multiply_adds, latency_ms)


# What a search on shared weights uses unless the config says otherwise (measured on digits,
# docs/benchmarks.md "ENAS shared-weight learning on digits"): ENAS's five ops, a wider proxy
# network and, without a budget, more candidates (each costs milliseconds).
ENAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "space": {"ops": list(ENAS_OPS)},
    "network": {"channels": 16},
}
ENAS_BUDGET: dict[str, Any] = {"architectures": 400}


class WorkersConfig(_Section):
    """Standalone candidates trained on Ray (the `workers` package), `max_concurrent` at once.

    Without this section candidates train in this process. `address` (or NAS_RAY_ADDRESS, which
    wins) joins an existing cluster; without either Ray starts locally with what it finds.
    """

    max_concurrent: int = Field(2, ge=1, description="candidates training at once")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs reserved per candidate")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs per candidate; fractions share one")
    retries: int = Field(2, ge=0, description="re-runs of a candidate whose worker died")
    early_stopping: Literal["none", "asha"] = "none"
    grace_period: int = Field(1, ge=1, description="ASHA: epochs before a candidate can stop")
    reduction_factor: float = Field(2.0, gt=1, description="ASHA: keep the best 1/factor")
    address: str | None = Field(None, min_length=1, description="Ray cluster to join")

    @model_validator(mode="after")
    def _whole_gpus_or_a_fraction(self) -> WorkersConfig:
        if self.gpus_per_trial > 1 and not self.gpus_per_trial.is_integer():
            raise ValueError(f"gpus_per_trial: a fraction must be below 1 (got "
                             f"{self.gpus_per_trial:g}); above 1 give whole GPUs")
        return self


class RunnerConfig(_Section):
    """What the process that runs the search (the server's runner: a Ray actor) asks for; an
    ENAS search trains its supernet there, so `gpus: 1` puts it on a GPU node."""

    cpus: float = Field(1.0, gt=0, le=1024)
    gpus: float = Field(0.0, ge=0, le=64)


class SearchConfig(_Section):
    name: str = Field("search", min_length=1, max_length=200)
    seed: Seed = 0
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    workers: WorkersConfig | None = Field(None, description="train candidates on Ray")
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    samples_per_step: int = Field(4, ge=1, description="architectures asked and told per step")
    checkpoint_every: int | None = Field(
        None, ge=1, description="steps between checkpoints (default: every supernet epoch for "
        "enas, every step otherwise)"
    )

    @field_validator("name")
    @classmethod
    def _name_is_one_line(cls, name: str) -> str:
        if any(ord(character) < 32 or ord(character) == 127 for character in name):
            raise ValueError("must be one line of text, without control characters")
        return name

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        if (where := nul_characters(data)) is not None:
            raise ValueError(f"{where}: contains a NUL character (\\x00), which cannot be stored")
        return data

    @model_validator(mode="before")
    @classmethod
    def _evaluator_defaults(cls, data: Any) -> Any:
        """The evaluator a config leaves unnamed is `enas`, or `standalone` when it has a
        `workers` section; an `enas` config gets the ENAS defaults for what it leaves out."""
        if not isinstance(data, dict) or not isinstance(data.get("evaluator") or {}, dict):
            return data  # not a mapping: the field validators say so
        filled = dict(data)
        evaluator = dict(data.get("evaluator") or {})
        evaluator.setdefault("name", "standalone" if data.get("workers") is not None else "enas")
        filled["evaluator"] = evaluator
        if evaluator["name"] != "enas":
            return filled
        for section, defaults in ENAS_DEFAULTS.items():
            given = filled.get(section) or {}
            if isinstance(given, dict):
                filled[section] = defaults | given
        if not filled.get("budget"):  # a budget the config gives is taken whole
            filled["budget"] = dict(ENAS_BUDGET)
        return filled

    @property
    def training_paths(self) -> Literal["strategy", "uniform"]:
        """Where ENAS's supernet minibatches take their paths (see `EvaluatorConfig`)."""
        if self.evaluator.training_paths is not None:
            return self.evaluator.training_paths
        return "strategy" if self.strategy.name == "reinforce" else "uniform"

    @property
    def checkpoint_interval(self) -> int:
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        return self.evaluator.steps_per_epoch if self.evaluator.name == "enas" else 1

    @model_validator(mode="after")
    def _workers_train_standalone_candidates(self) -> SearchConfig:
        if self.workers is None:
            return self
        if self.evaluator.name != "standalone":
            raise ValueError(f"workers: Ray trains standalone candidates; evaluator "
                             f"{self.evaluator.name!r} runs in-process (drop workers)")
        workers = self.workers
        if workers.early_stopping == "asha" and workers.grace_period > self.evaluator.epochs:
            raise ValueError(f"workers.grace_period ({self.workers.grace_period}) exceeds "
                             f"evaluator.epochs ({self.evaluator.epochs})")
        return self

    @model_validator(mode="after")
    def _objective_has_networks(self) -> SearchConfig:
        objective = self.objective
        if self.evaluator.name == "synthetic" and (
                uses_params(objective) or uses_multiply_adds(objective)
                or uses_latency(objective)):
            raise ValueError("objective: the synthetic evaluator builds no network, so it has "
                             "no parameters, multiply-adds or latency to target (drop the "
                             "targets)")
        return self

    @model_validator(mode="after")
    def _strategy_accepts_options(self) -> SearchConfig:
        from nas.strategies import validate_options

        try:
            validate_options(self.strategy.name, self.strategy.options,  # builds no strategy
                             self.space.build().ops)
        except ValidationError as error:  # its fields are the strategy's: say so
            raise ValueError("; ".join(
                f"strategy.{'.'.join(map(str, item['loc']))}: "
                f"{item['msg'].removeprefix('Value error, ')}" for item in error.errors())
            ) from None
        return self


MAX_ARCHITECTURES = 10_000_000
MAX_SECONDS = 366 * 86_400  # a budget of a year
MAX_CANDIDATE_SECONDS = 30 * 86_400
MAX_MEMORY_MB = 16 * 2**20  # 16 TiB
MAX_BATCH = 65_536
RAY_DECIMALS = 4  # Ray counts fractional resources to 1e-4


def check_new_search(config: SearchConfig) -> None:
    """What a search is checked for when it is created, on top of the model's validation:
    limits added after searches were stored under looser rules (a stored search still loads,
    resumes and exports). Each value beyond them failed the search, or every candidate of it,
    after it was stored. `ConfigError` naming every field."""
    evaluator, budget, runner = config.evaluator, config.budget, config.runner
    problems = _name_problems(config.name)
    problems += [f"{path}: at most {limit:,}, got {value:g}" for path, value, limit in (
        ("budget.architectures", budget.architectures, MAX_ARCHITECTURES),
        ("budget.seconds", budget.seconds, MAX_SECONDS),
        ("evaluator.timeout_seconds", evaluator.timeout_seconds, MAX_CANDIDATE_SECONDS),
        ("evaluator.memory_limit_mb", evaluator.memory_limit_mb, MAX_MEMORY_MB),
        ("evaluator.batch_size", evaluator.batch_size, MAX_BATCH),
        ("workers.cpus_per_trial", config.workers and config.workers.cpus_per_trial, 1024),
        ("workers.gpus_per_trial", config.workers and config.workers.gpus_per_trial, 64),
    ) if value is not None and value > limit]
    resources = [("runner.cpus", runner.cpus), ("runner.gpus", runner.gpus)]
    if config.workers is not None:
        resources += [("workers.cpus_per_trial", config.workers.cpus_per_trial),
                      ("workers.gpus_per_trial", config.workers.gpus_per_trial)]
    problems += [f"{path}: Ray counts resources to {RAY_DECIMALS} decimals, got {value:g}"
                 for path, value in resources if round(value, RAY_DECIMALS) != value]
    if evaluator.micro_batch is not None and evaluator.micro_batch > evaluator.batch_size:
        problems.append(f"evaluator.micro_batch ({evaluator.micro_batch}) exceeds "
                        f"evaluator.batch_size ({evaluator.batch_size})")
    if evaluator.reward_epochs > evaluator.epochs:
        problems.append(f"evaluator.reward_epochs ({evaluator.reward_epochs}) exceeds "
                        f"evaluator.epochs ({evaluator.epochs}): the reward is the best "
                        f"validation accuracy of the last reward_epochs epochs")
    if problems:
        raise ConfigError("; ".join(problems))


# Characters that make text display other than it is: bidirectional overrides and isolates
# (a name "\u202eexe.txt" shows as "txt.exe"), and those that show nothing (zero width).
HIDDEN_CHARACTERS = frozenset("\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d"
                              "\u202e\u2066\u2067\u2068\u2069")


def _name_problems(name: str) -> list[str]:
    if not name.strip() or all(character in HIDDEN_CHARACTERS or character.isspace()
                               for character in name):
        return ["name: shows nothing (only spaces or invisible characters)"]
    if hidden := sorted({f"U+{ord(character):04X}" for character in name
                         if character in HIDDEN_CHARACTERS}):
        return [f"name: holds characters that change how it reads or show nothing "
                f"({', '.join(hidden)})"]
    return []


def describe_validation_error(error: ValidationError) -> str:
    """Pydantic's errors as one line: `field.path: message; ...`."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def parse_config(data: Any, source: str = "config") -> SearchConfig:
    """Validate a mapping into a `SearchConfig`, raising `ConfigError` naming the fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {describe_validation_error(error)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """Read a YAML (or JSON) config file, apply `overrides` (nested dicts), validate."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, so no YAML config") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return parse_config(merge(data, overrides or {}), source=str(path))


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied recursively (override values win)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
