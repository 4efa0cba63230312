"""Evaluators score a batch of genotypes; the search loop records what they return.

`StandaloneEvaluator` trains each candidate from scratch in this process with the shared
training loop (the proxy budget of Zoph et al.); `SyntheticEvaluator` scores against a
hidden target genotype without training, for testing strategies and the loop. A candidate
that fails (a diverged loss, an error while building or training it) is returned as FAIL with
its error; the search goes on.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from nas.config import SearchConfig
from nas.data import DataSplits
from nas.latency import measure_latency, trained_on
from nas.metrics import Metrics
from nas.seeding import stream_seed
from nas.states import ArchitectureState
from nas.strategies.synthetic import TokenMatchObjective
from nas.train import EpochCallback, TrainConfig, train_model
from searchspace.complexity import count_flops, count_parameters
from searchspace.genotype import Genotype
from searchspace.network import CellNetwork
from searchspace.registry import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """The outcome for one candidate. `state` is COMPLETE, PRUNED or FAIL."""

    state: ArchitectureState
    reward: float | None = None
    accuracy: float | None = None
    params: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    train_seconds: float | None = None
    metrics: Metrics = field(default_factory=Metrics)
    error: str | None = None
    weights_path: str | None = None
    """Where its trained weights were saved (None: not kept)."""

    def __post_init__(self) -> None:  # what a worker sends back is JSON: strings and dicts
        object.__setattr__(self, "state", ArchitectureState(self.state))
        object.__setattr__(self, "metrics", Metrics.of(self.metrics))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values; `Evaluation(**evaluation.to_json())` gives it back."""
        return {**{name: getattr(self, name) for name in self.__dataclass_fields__},
                "state": str(self.state), "metrics": self.metrics.to_json()}


class Proposer(Protocol):
    """What an evaluator's hooks may ask of the search's strategy: its ask/tell interface
    (`nas.strategies.Strategy`). Whatever a hook asks it tells or abandons before it returns."""

    def ask(self, n: int) -> list[Genotype]: ...

    def tell(self, genotypes: Sequence[Genotype], rewards: Sequence[float]) -> None: ...

    def abandon(self, genotypes: Sequence[Genotype]) -> None: ...


class Evaluator(ABC):
    """Scores genotypes; `name` is recorded with every architecture.

    The hooks let an evaluator keep learnt state (ENAS's shared weights): `before_step` runs
    before each step of the loop, `derive` after the budget is spent (its results are recorded
    as 'derived'), and the state is checkpointed with the strategy's. Both get the strategy
    only as a `Proposer`: an evaluator knows no strategy by name.
    """

    name: str

    @abstractmethod
    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Evaluation]:
        """One evaluation per genotype, in order."""

    def before_step(self, step: int, strategy: Proposer) -> None:  # noqa: B027  (optional)
        """Called before step `step`."""

    def derive(self, strategy: Proposer) -> list[tuple[Genotype, Evaluation]]:
        """Final candidates to record once the budget is spent."""
        return []

    def set_deadline(self, deadline: float | None) -> None:  # noqa: B027  (optional hook)
        """The `time.perf_counter()` by which the search, `derive` included, must end (None:
        no time budget); an evaluator that trains between steps or derives keeps to it."""

    def reserved_seconds(self) -> float:
        """Seconds `derive` needs at the end: the loop stops asking that long before the
        deadline."""
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release what the evaluator holds (worker processes, threads)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027  (optional hook)
        """Restore what `state_dict` returned."""


class ConcurrentEvaluator(Evaluator):
    """Runs up to `max_concurrent` candidates at once and hands each back as it finishes.

    The search loop (`nas.concurrent_search`) submits candidates under keys of its choosing,
    collects finished ones with `wait`, and tells the strategy as rewards come in, so a slow
    candidate does not stall the others. Ray workers implement it (`workers.ray_evaluator`).
    """

    max_concurrent: int

    @abstractmethod
    def submit(self, key: int, genotype: Genotype) -> None:
        """Start scoring `genotype`; its evaluation comes back from `wait` under `key`."""

    @abstractmethod
    def wait(self, timeout: float) -> list[tuple[int, Evaluation]]:
        """Evaluations finished since the last call (blocks up to `timeout` s for the first)."""

    @abstractmethod
    def cancel(self) -> list[int]:
        """Stop every running candidate; the keys of those that were still running."""

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Evaluation]:
        """All at once (`max_concurrent` at a time), returned in order."""
        for key, genotype in enumerate(genotypes):
            self.submit(key, genotype)
        results: dict[int, Evaluation] = {}
        while len(results) < len(genotypes):
            results.update(self.wait(timeout=1.0))
        return [results[key] for key in range(len(genotypes))]


def is_out_of_memory(error: BaseException) -> bool:
    """A host or CUDA allocation that failed (torch raises RuntimeError for the host)."""
    text = str(error).lower()
    return isinstance(error, MemoryError | torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError)
        and ("can't allocate memory" in text or "out of memory" in text))


def describe_failure(error: BaseException) -> str:
    """The error recorded for a failed candidate; out-of-memory failures say so first."""
    text = f"{type(error).__name__}: {error}"
    return f"out of memory: {text}" if is_out_of_memory(error) else text


def release_memory() -> None:
    """Give back what a finished (or failed) candidate held, so the next one has room."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def standalone_train_config(config: SearchConfig) -> TrainConfig:
    """The recipe a search trains networks from scratch with: its standalone candidates, the
    ENAS retraining of its derived cells and its zoo baselines (`nas baselines`)."""
    return TrainConfig(
        epochs=config.evaluator.epochs,
        batch_size=config.evaluator.batch_size,
        learning_rate=config.evaluator.learning_rate,
        micro_batch=config.evaluator.micro_batch,
        seed=config.seed,
    )


class StandaloneEvaluator(Evaluator):
    """Train every candidate from scratch on the search's train split, score on its valid split."""

    name = "standalone"

    def __init__(self, config: SearchConfig, data: DataSplits, weights_dir: Path | None = None,
                 device: torch.device | None = None) -> None:
        """`weights_dir`: where each trained candidate's weights are kept (None: not kept);
        `device`: where candidates train (None: CUDA when available, else the CPU)."""
        self.config = config
        self.data = data
        self.weights_dir = weights_dir
        self.device = device
        self._worker = None  # a CandidateProcess once a limit asks for one
        self.train_config = standalone_train_config(config)

    def build(self, genotype: Genotype) -> CellNetwork:
        info = self.data.info
        return CellNetwork(
            genotype, num_classes=info.num_classes, in_channels=info.in_channels,
            cells=self.config.network.cells, channels=self.config.network.channels,
        )

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Evaluation]:
        return [self.evaluate_one(genotype) for genotype in genotypes]

    def evaluate_one(self, genotype: Genotype, on_epoch: EpochCallback | None = None
                     ) -> Evaluation:
        """Train and score one candidate; `on_epoch` sees each epoch's metrics (returning True
        stops training early, in this process). With a time or memory limit in the config the
        candidate trains in a worker process (`nas.candidate_process`)."""
        options = self.config.evaluator
        if options.timeout_seconds is None and options.memory_limit_mb is None:
            return self.train_one(genotype, on_epoch)
        if self._worker is None:
            from nas.candidate_process import CandidateProcess

            self._worker = CandidateProcess(self.config, self.data, self.weights_dir, self.device)
        return self._worker.evaluate_one(genotype, on_epoch)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def train_one(self, genotype: Genotype, on_epoch: EpochCallback | None = None
                  ) -> Evaluation:
        """Train and score one candidate in this process."""
        info = self.data.info
        input_shape = (info.in_channels, info.input_size, info.input_size)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stream_seed(self.config.seed, "candidate-weights"))
                model = self.build(genotype)
            params = count_parameters(model)
            flops = count_flops(model, input_shape)
            result = train_model(model, self.data, self.train_config, device=self.device,
                                 on_epoch=on_epoch)
            latency = measure_latency(model, input_shape, device=trained_on(model),
                                      batch_size=self.train_config.batch_size,
                                      num_classes=info.num_classes,
                                      micro_batch=self.train_config.micro_batch)
        except Exception as error:  # a failed candidate is recorded, the search goes on
            logger.warning("candidate %s failed: %s", genotype.id, error)
            return Evaluation(state=ArchitectureState.FAIL, error=describe_failure(error),
                              metrics={"traceback": traceback.format_exc(limit=20)})
        finally:
            release_memory()
        last = result.history[-self.config.evaluator.reward_epochs:]
        accuracy = max(epoch.val_accuracy for epoch in last)
        weights_path = None
        if self.weights_dir is not None:
            weights_path = str(self._save_weights(genotype, model))
        return Evaluation(
            state=ArchitectureState.COMPLETE,
            reward=self.config.objective.reward(accuracy, params, flops, latency.forward_ms),
            accuracy=accuracy,
            params=params,
            flops=flops,
            latency_ms=latency.forward_ms,
            train_seconds=result.seconds,
            metrics=Metrics.model_validate(result.to_dict()).with_values(
                **latency.as_metrics()),
            weights_path=weights_path,
        )

    def _save_weights(self, genotype: Genotype, model: torch.nn.Module) -> Path:
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        path = (self.weights_dir / f"{genotype.id}.pt").resolve()
        torch.save({key: value.detach().cpu().contiguous()
                    for key, value in model.state_dict().items()}, path)
        return path


class SyntheticEvaluator(Evaluator):
    """Scores by `TokenMatchObjective` (share of decisions equal to a hidden target): no training.

    For testing and benchmarking strategies and the loop; its optimum (1.0) is known.
    """

    name = "synthetic"

    def __init__(self, config: SearchConfig) -> None:
        # A target seed of its own: the strategies' first samples use `config.seed` itself.
        self.objective = TokenMatchObjective(config.space.build(), seed=f"target-{config.seed}")
        self.seconds = config.evaluator.synthetic_seconds

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Evaluation]:
        time.sleep(self.seconds * len(genotypes))
        return [
            Evaluation(state=ArchitectureState.COMPLETE, reward=score, accuracy=score)
            for score in map(self.objective, genotypes)
        ]


WorkersFactory = Callable[[SearchConfig, DataSplits, Path | None], ConcurrentEvaluator]
_workers_factory: WorkersFactory | None = None


def register_workers_evaluator(factory: WorkersFactory) -> None:
    """Set what trains a config's candidates on workers (`workers.ray_evaluator` registers
    Ray's when imported; the engine itself never imports the layer above it)."""
    global _workers_factory
    _workers_factory = factory


EvaluatorFactory = Callable[[SearchConfig, DataSplits | None, Path | None], Evaluator]
# The evaluators a config names (`evaluator.name`), each a factory of (config, data,
# weights_dir); `create_evaluator` picks one.
EVALUATORS: Registry[EvaluatorFactory] = Registry("evaluator")


def _with_data(config: SearchConfig, data: DataSplits | None) -> DataSplits:
    if data is None:
        raise ValueError(f"evaluator {config.evaluator.name!r} needs a dataset")
    return data


@EVALUATORS.register("synthetic")
def _synthetic(config: SearchConfig, data: DataSplits | None, weights_dir: Path | None
               ) -> Evaluator:
    return SyntheticEvaluator(config)


@EVALUATORS.register("standalone")
def _standalone(config: SearchConfig, data: DataSplits | None, weights_dir: Path | None
                ) -> Evaluator:
    return StandaloneEvaluator(config, _with_data(config, data), weights_dir)


@EVALUATORS.register("enas")
def _enas(config: SearchConfig, data: DataSplits | None, weights_dir: Path | None
          ) -> Evaluator:
    from nas.enas import EnasEvaluator

    return EnasEvaluator(config, _with_data(config, data), weights_dir=weights_dir)


def create_evaluator(config: SearchConfig, data: DataSplits | None,
                     weights_dir: Path | None = None) -> Evaluator:
    """The evaluator the config names (`data` is needed by those that train; standalone
    candidates' weights are kept in `weights_dir` when given)."""
    if config.workers is not None:  # standalone candidates on the registered back end
        if _workers_factory is None:
            raise ValueError("workers: no worker back end is loaded (import "
                             "workers.ray_evaluator, as `nas search` and the server do)")
        return _workers_factory(config, _with_data(config, data), weights_dir)
    return EVALUATORS.create(config.evaluator.name, config, data, weights_dir)
