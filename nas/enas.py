"""ENAS (Pham et al., 2018): candidates scored under one supernet's shared weights.

The search loop drives it like any evaluator. First the shared weights warm up for
`warmup_epochs` epochs on uniformly sampled paths; then, before every `steps_per_epoch`-th
step, they train for one epoch on the train split, a fresh architecture per minibatch (asked
of the strategy or uniform, as `evaluator.training_paths` says); Adam, cosine-annealed over
the planned epochs. Each candidate the strategy asks for is then scored on the next validation
minibatch (or `evaluator.score_batches` of them; with `score_on: shared`, the same ones for every
candidate of a supernet epoch): accuracy under the shared weights (or, with
`evaluator.score_by: loss`, exp of minus the mean cross-entropy), without gradients, with batch
norm using each scoring batch's statistics and leaving the running statistics alone (training-mode
normalisation as ENAS scores, but nothing learnt from validation data); its reward is the
search objective (`nas.objective`) of that score and the path's parameters (and
multiply-adds and latency when targeted: both measured on the path's standalone network, once
per genotype; the latencies are kept in the checkpoint, so a resumed search sees the same).
At the end `derive` asks for candidates, scores each on the whole validation split (by the
accuracy, or by the cross-entropy with `evaluator.derive_by: loss`), tells the strategy their
rewards and returns the best, each with its latency (`nas.latency`: a batch-1
forward pass and a training step at the search's batch) and the agreement of the search's
scores with the whole split's (`nas.ranking`). The strategy is reached only through its
ask/tell interface.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.config import SearchConfig
from nas.data import DataSplits
from nas.evaluators import Evaluation, Evaluator, Proposer, StandaloneEvaluator
from nas.latency import Latency, measure_latency
from nas.memory_format import to_channels_last, use_channels_last
from nas.metrics import Retrained
from nas.micro_batches import micro_batches
from nas.objective import uses_latency, uses_multiply_adds
from nas.ranking import agreement
from nas.schedule import cosine_factor
from nas.seeding import stream_seed
from nas.states import ArchitectureState
from nas.train import TrainingDiverged
from searchspace.complexity import count_flops, count_parameters
from searchspace.genotype import Genotype
from searchspace.supernet import Supernet, extract_network

logger = logging.getLogger(__name__)
Batch = tuple[torch.Tensor, torch.Tensor]
DERIVE_MARGIN = 1.2  # the time reserved for derivation: its estimate times this
CPU = torch.device("cpu")  # the supernet trains and scores on the CPU
DERIVE_OVERHEAD_SECONDS = 0.5  # the derived networks' parameters and multiply-adds counted

@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Eval mode, except that batch norm uses each batch's own statistics, leaving the running
    ones as they are; every module's mode is restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    norms = [m for m in modes if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for module in norms:
        module.train()
        module.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for module, momentum in zip(norms, momenta, strict=True):
            module.momentum = momentum
        for module, training in modes.items():
            module.training = training


def accuracy_of(counts: Sequence[tuple[int, int]]) -> float:
    """The accuracy of (correct, seen) counts taken together."""
    return sum(correct for correct, _ in counts) / sum(seen for _, seen in counts)


def totals(outcomes: Sequence[tuple[int, int, float]]) -> tuple[int, int, float]:
    """(correct, seen, summed cross-entropy) over per-batch `outcomes` of the same kind."""
    correct, seen, loss = (sum(column) for column in zip(*outcomes, strict=True))
    return correct, seen, loss


def loss_fit(mean_loss: float) -> float:
    """What the objective is applied to when candidates are scored by their cross-entropy:
    exp(-loss), in (0, 1] like an accuracy (the geometric mean of the probability given to the
    right class); 0 for a non-finite loss, so that the candidate ranks last."""
    return math.exp(-mean_loss) if math.isfinite(mean_loss) else 0.0


def planned_supernet_epochs(config: SearchConfig) -> int | None:
    """Supernet epochs a search will train: the warm-up, then one per `steps_per_epoch` steps
    of the architecture budget (None when only a time budget is set)."""
    architectures = config.budget.architectures
    if architectures is None:
        return None
    steps = math.ceil(architectures / config.samples_per_step)
    options = config.evaluator
    return options.warmup_epochs + math.ceil(steps / options.steps_per_epoch)


class EnasEvaluator(Evaluator):
    """Scores genotypes under a weight-sharing supernet that it trains between steps."""

    name = "enas"

    def __init__(self, config: SearchConfig, data: DataSplits,
                 weights_dir: Path | None = None) -> None:
        """`weights_dir`: where the retrained derived cells keep their weights."""
        self.config = config
        self.weights_dir = weights_dir
        self.options = config.evaluator
        self.data = data
        self.strategy_paths = config.training_paths == "strategy"
        info = data.info
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(config.seed, "enas-supernet"))
            self.supernet = Supernet(
                config.space.build(), num_classes=info.num_classes, cells=config.network.cells,
                channels=config.network.channels, in_channels=info.in_channels,
            )
        # channels_last measured 1.5x faster steps on AVX-512 CPUs; unsafe on AVX2 ones
        channels_last = use_channels_last(CPU, self.supernet, info.in_channels)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            to_channels_last(self.supernet, CPU, info.in_channels)
        self.optimizer = torch.optim.Adam(
            self.supernet.parameters(), lr=self.options.supernet_learning_rate,
            weight_decay=self.options.weight_decay,
        )
        self.planned_epochs = planned_supernet_epochs(config)
        self.epochs_done = 0
        self.valid_cursor = 0
        self.uniform = random.Random(f"enas-uniform-{config.seed}")
        self.fixed_topology = self.supernet.space.sample(
            random.Random(f"enas-topology-{config.seed}"))
        # in the supernet's memory format once, not again for every candidate scored
        self.valid_batches = [(images.contiguous(memory_format=self.memory_format), labels)
                              for images, labels in data.valid_loader(self.options.batch_size)]
        self.deadline: float | None = None
        self.derive_seconds: float | None = None  # measured: one candidate on the whole split
        self.latency_seconds: float | None = None  # measured: one derived cell's latencies
        self._multiply_adds: dict[str, int] = {}  # per genotype id, when the objective wants them
        self._latencies: dict[str, dict[str, float | None]] = {}  # per genotype id, measured

    # the time budget

    def set_deadline(self, deadline: float | None) -> None:
        self.deadline = deadline

    def reserved_seconds(self) -> float:
        """The estimated time of `derive` (`derive_samples` candidates, each scored on the whole
        validation split in the measured time, and the latencies of the `derive_top` kept),
        with a margin."""
        if self.deadline is None:
            return 0.0
        return ((self.options.derive_samples * self.derive_seconds_per_candidate()
                 + self.options.derive_top * self.latency_seconds_per_candidate()) * DERIVE_MARGIN
                + DERIVE_OVERHEAD_SECONDS)

    def latency_seconds_per_candidate(self) -> float:
        """Seconds to measure one derived cell's latencies (measured once with a fixed
        genotype, whose latencies are kept like any other's)."""
        if self.latency_seconds is None:
            started = time.perf_counter()
            self.latency(self.supernet.space.sample(random.Random(0)), train_step=True)
            self.latency_seconds = time.perf_counter() - started
        return self.latency_seconds

    def derive_seconds_per_candidate(self) -> float:
        """Seconds to score one candidate on the whole validation split (measured once with a
        fixed genotype when derivation has not measured it yet)."""
        if self.derive_seconds is None:
            genotype = self.supernet.space.sample(random.Random(0))
            for _ in range(2):  # the first pass also pays one-off start-up costs
                self.score_on_whole_split(genotype)
        return self.derive_seconds or 0.0

    def score_on_whole_split(self, genotype: Genotype) -> float:
        """Accuracy of `genotype` on the whole validation split; its time is kept."""
        correct, seen, _ = totals(self.whole_split_outcome(genotype))
        return correct / seen

    def whole_split_outcome(self, genotype: Genotype) -> list[tuple[int, int, float]]:
        """(correct, seen, summed cross-entropy) of `genotype` per batch of the whole validation
        split; their time is kept."""
        started = time.perf_counter()
        [outcomes] = self.batch_outcomes([genotype], [self.whole_split()])
        self.derive_seconds = time.perf_counter() - started
        return outcomes

    def whole_split(self) -> list[Batch]:
        """The validation split in the search's batches: batch norm normalises with the same
        batch size as when candidates are scored, and no second copy of the split is held
        (batches of 512 took 1.4x as long on 2 cores and 0.5 GiB more memory at the peers'
        CIFAR configuration: docs/benchmarks.md, "ENAS memory: where it goes")."""
        return self.valid_batches

    def training_time_left(self) -> bool:
        """Whether the supernet may keep training: no deadline, or before it less the reserve."""
        if self.deadline is None:
            return True
        return time.perf_counter() < self.deadline - self.reserved_seconds()

    # the search loop's hooks

    def before_step(self, step: int, strategy: Proposer) -> None:
        if step % self.options.steps_per_epoch == 0:
            while self.epochs_done < self.options.warmup_epochs and self.training_time_left():
                self.train_epoch(strategy, uniform=True)
            if self.training_time_left():
                self.train_epoch(strategy)

    def scoring_batches(self, candidates: int) -> list[list[int]]:
        """The validation batches (indices) the next `candidates` candidates of the search are
        scored on, as `score_batches` and `score_on` say: each its own next ones of the split in
        turn, or the same ones for every candidate of a supernet epoch (shifting by epoch, so a
        resumed search picks the same ones)."""
        total = len(self.valid_batches)
        count = min(self.options.score_batches, total)
        if self.options.score_on == "shared":
            first = self.epochs_done * count
            return [[(first + offset) % total for offset in range(count)]] * candidates
        return [[(self.valid_cursor + index * count + offset) % total for offset in range(count)]
                for index in range(candidates)]

    def search_score(self, correct: int, seen: int, loss: float) -> float:
        """What the search's scoring rewards (the objective is applied to it): exp(-mean loss)
        with `score_by: loss`, else the accuracy."""
        return loss_fit(loss / seen) if self.options.score_by == "loss" else correct / seen

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Evaluation]:
        indices = self.scoring_batches(len(genotypes))
        if self.options.score_on == "own":
            self.valid_cursor += sum(len(own) for own in indices)
        by_loss = self.options.score_by == "loss"
        outcomes = self.batch_outcomes(
            genotypes, [[self.valid_batches[index] for index in own] for own in indices],
            losses=by_loss)
        evaluations = []
        for genotype, own in zip(genotypes, outcomes, strict=True):
            correct, seen, loss = totals(own)
            params, multiply_adds = self.complexity(genotype)
            latency_ms = self.targeted_latency_ms(genotype)
            accuracy = correct / seen
            metrics: dict[str, Any] = {"supernet_epochs": self.epochs_done, "scored_on": seen}
            if by_loss:
                metrics["batch_loss"] = loss / seen
            evaluations.append(Evaluation(
                state=ArchitectureState.COMPLETE, reward=self.config.objective.reward(
                    self.search_score(correct, seen, loss), params, multiply_adds, latency_ms),
                accuracy=accuracy, params=params, flops=multiply_adds, latency_ms=latency_ms,
                metrics=metrics,
            ))
        return evaluations

    def derive(self, strategy: Proposer) -> list[tuple[Genotype, Evaluation]]:
        """Ask the strategy for `derive_samples` candidates, score each on the whole validation
        split (and tell it those scores), keep the best `derive_top` (with parameters,
        multiply-adds and the standalone network); the best `retrain_top` of those are also
        trained from scratch as standalone candidates. Under a deadline, candidates are scored
        while the next one fits before it (at least one); the others are abandoned. Each
        derived cell carries `metrics.ranking`: how far the candidates' search scores
        (the batches each would have been scored on next, read from the same pass) rank them as
        the whole split does (each as its option says: `score_by`, `derive_by`)."""
        asked = strategy.ask(self.options.derive_samples)
        candidates = list(dict.fromkeys(asked))
        scores: list[float] = []
        losses: list[float] = []
        searched: list[float] = []  # what each would have scored as the search's next candidate
        next_batches = self.scoring_batches(len(candidates))
        for index, genotype in enumerate(candidates):
            if scores and not self.derive_time_left():
                logger.info("derivation stopped by the time budget after %d of %d candidates",
                            len(scores), len(candidates))
                break
            outcomes = self.whole_split_outcome(genotype)
            correct, seen, loss = totals(outcomes)
            scores.append(correct / seen)
            losses.append(loss / seen)
            searched.append(self.search_score(
                *totals([outcomes[batch] for batch in next_batches[index]])))
        candidates = candidates[:len(scores)]
        objective = self.config.objective
        fits = (scores if self.options.derive_by == "accuracy"
                else [loss_fit(loss) for loss in losses])
        ranking = agreement(searched, fits, stream_seed(self.config.seed, "ranking"))
        rewards = [objective.reward(fit, *self.complexity(genotype),
                                    self.targeted_latency_ms(genotype))
                   for fit, genotype in zip(fits, candidates, strict=True)]
        ranked = sorted(zip(rewards, scores, losses, candidates, strict=True),
                        key=lambda row: -row[0])
        reward_of = dict(zip(candidates, rewards, strict=True))
        told = [genotype for genotype in asked if genotype in reward_of]
        if told:
            strategy.tell(told, [reward_of[genotype] for genotype in told])
        if unscored := [genotype for genotype in asked if genotype not in reward_of]:
            strategy.abandon(unscored)
        info = self.data.info
        derived = []
        for reward, accuracy, loss, genotype in ranked[: self.options.derive_top]:
            network = extract_network(self.supernet, genotype)
            latency = self.latency(genotype, train_step=True)
            derived.append((genotype, Evaluation(
                state=ArchitectureState.COMPLETE, reward=reward, accuracy=accuracy,
                params=count_parameters(network),
                flops=count_flops(network, (info.in_channels, info.input_size, info.input_size)),
                latency_ms=latency.forward_ms,
                metrics={"supernet_epochs": self.epochs_done, "scored_on": info.valid_size,
                         "derived_from": len(candidates), "whole_split_loss": loss,
                         "ranking": ranking.model_dump(),
                         **latency.as_metrics()},
            )))
        return [(genotype, self.retrained(genotype, evaluation) if rank < self.options.retrain_top
                 else evaluation) for rank, (genotype, evaluation) in enumerate(derived)]

    def derive_time_left(self) -> bool:
        """Whether one more derivation candidate fits before the deadline."""
        if self.deadline is None:
            return True
        needed = self.derive_seconds_per_candidate() + DERIVE_OVERHEAD_SECONDS
        return time.perf_counter() + needed < self.deadline

    def retrained(self, genotype: Genotype, derived: Evaluation) -> Evaluation:
        """`derived` with the outcome of training `genotype` from scratch (the standalone
        evaluator's proxy budget) under `metrics.retrained`, and its weights for export."""
        standalone = StandaloneEvaluator(self.config, self.data, self.weights_dir)
        try:
            outcome = standalone.evaluate_one(genotype)
        finally:
            standalone.close()
        retrained = Retrained(state=outcome.state, accuracy=outcome.accuracy,
                              params=outcome.params, flops=outcome.flops,
                              train_seconds=outcome.train_seconds, error=outcome.error)
        return dataclasses.replace(
            derived, metrics=derived.metrics.with_values(retrained=retrained.model_dump()),
            train_seconds=outcome.train_seconds, weights_path=outcome.weights_path)

    def state_dict(self) -> dict[str, Any]:
        return {
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epochs_done": self.epochs_done,
            "valid_cursor": self.valid_cursor,
            "uniform": list(self.uniform.getstate()),
            "latencies": dict(self._latencies),
            "latency_seconds": self.latency_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epochs_done = state["epochs_done"]
        self.valid_cursor = state["valid_cursor"]
        version, internal, gauss = state["uniform"]
        self.uniform.setstate((version, tuple(internal), gauss))
        # checkpoints written before latencies were measured have none
        self._latencies = dict(state.get("latencies", {}))
        self.latency_seconds = state.get("latency_seconds")

    # the work

    def train_epoch(self, strategy: Proposer, *, uniform: bool = False) -> float:
        """One epoch of shared-weight training, one step per minibatch on its paths
        (`minibatch_paths`): asked of the strategy (and abandoned: it trains, it is not scored)
        when the config's `training_paths` says so, else, and during the warm-up, drawn
        uniformly (in the first `topology_warmup_epochs` epochs only their ops: their inputs
        are one fixed genotype's). The loss is the mean over the minibatch's paths."""
        self.supernet.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        batches = self.data.train_loader(self.options.batch_size,
                                         seed=self.config.seed * 10_007 + self.epochs_done)
        total, count = 0.0, 0
        for images, labels in batches:
            if not self.training_time_left():  # the time budget: the epoch ends here
                break
            paths = self.minibatch_paths(strategy, uniform)
            images = images.contiguous(memory_format=self.memory_format)
            self.optimizer.zero_grad(set_to_none=True)
            for genotype in paths:
                for part, part_labels, share in micro_batches(images, labels,
                                                              self.options.micro_batch):
                    loss = F.cross_entropy(self.supernet(part, genotype), part_labels)
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(
                            f"supernet loss became {loss.item()} in epoch "
                            f"{self.epochs_done + 1}; try a lower "
                            "evaluator.supernet_learning_rate "
                            f"(now {self.options.supernet_learning_rate:g})"
                        )
                    (loss * (share / len(paths))).backward()
                    total += loss.item() * share / len(paths)
            nn.utils.clip_grad_norm_(self.supernet.parameters(), self.options.grad_clip)
            self.optimizer.step()
            count += 1
        self.epochs_done += 1
        logger.info("supernet epoch %d: loss %.4f", self.epochs_done, total / max(count, 1))
        return total / max(count, 1)

    def minibatch_paths(self, strategy: Proposer, uniform: bool) -> list[Genotype]:
        """The paths one minibatch trains: the strategy's (asked and abandoned) when
        `training_paths` says so outside the warm-up; else drawn uniformly, one or, with
        `path_sampling: fair`, one per op using every op once (in the topology warm-up's
        epochs with its fixed inputs)."""
        if self.strategy_paths and not uniform:
            [genotype] = strategy.ask(1)
            strategy.abandon([genotype])
            return [genotype]
        space = self.supernet.space
        topology = (self.fixed_topology
                    if self.epochs_done < self.options.topology_warmup_epochs else None)
        if self.options.path_sampling == "fair":
            return space.fair_paths(self.uniform, topology)
        if topology is not None:
            return [space.sample_ops(self.uniform, topology)]
        return [space.sample(self.uniform)]

    def learning_rate(self) -> float:
        """Cosine annealing over the planned epochs (constant without an architecture budget),
        after a linear warm-up: a third, then two thirds of the rate in the first two epochs."""
        base = self.options.supernet_learning_rate
        warm = min(1.0, (self.epochs_done + 1) / 3)
        if self.planned_epochs is None:
            return base * warm
        progress = min(1.0, self.epochs_done / self.planned_epochs)
        return base * warm * cosine_factor(progress, floor=0.02)

    def accuracies(self, genotypes: Sequence[Genotype], batches: Sequence[Sequence[Batch]]
                   ) -> list[float]:
        """Accuracy under the shared weights of each genotype on its own list of batches."""
        return [accuracy_of(counts) for counts in self.batch_counts(genotypes, batches)]

    def batch_counts(self, genotypes: Sequence[Genotype], batches: Sequence[Sequence[Batch]]
                     ) -> list[list[tuple[int, int]]]:
        """(correct, seen) per batch of each genotype's own list of batches. Batch norm
        normalises each batch with its own statistics, so a batch's count is the same alone as
        within a list."""
        return [[(correct, seen) for correct, seen, _ in own]
                for own in self.batch_outcomes(genotypes, batches, losses=False)]

    def batch_outcomes(self, genotypes: Sequence[Genotype], batches: Sequence[Sequence[Batch]],
                       *, losses: bool = True) -> list[list[tuple[int, int, float]]]:
        """(correct, seen, summed cross-entropy) per batch of each genotype's own list of
        batches, under the shared weights with each batch's own statistics (the loss 0.0
        without `losses`)."""
        outcomes = []
        with torch.inference_mode(), batch_statistics(self.supernet):
            for genotype, own_batches in zip(genotypes, batches, strict=True):
                own = []
                for images, labels in own_batches:
                    images = images.contiguous(memory_format=self.memory_format)
                    logits = self.supernet(images, genotype)
                    correct = (logits.argmax(1) == labels).sum().item()
                    loss = (F.cross_entropy(logits.float(), labels, reduction="sum").item()
                            if losses else 0.0)
                    own.append((int(correct), labels.numel(), loss))
                outcomes.append(own)
        return outcomes

    def complexity(self, genotype: Genotype) -> tuple[int, int | None]:
        """Parameters and multiply-adds of `genotype`'s standalone network. Multiply-adds are
        counted (on the extracted network, kept per genotype) only when the objective targets
        them: a candidate is scored in milliseconds, counting them takes longer."""
        params = self.path_parameters(genotype)
        if not uses_multiply_adds(self.config.objective):
            return params, None
        if genotype.id not in self._multiply_adds:
            info = self.data.info
            network = extract_network(self.supernet, genotype)
            self._multiply_adds[genotype.id] = count_flops(
                network, (info.in_channels, info.input_size, info.input_size))
        return params, self._multiply_adds[genotype.id]

    def targeted_latency_ms(self, genotype: Genotype) -> float | None:
        """The forward latency of `genotype` when the objective targets latency, else None (a
        candidate is scored in milliseconds; measuring its latency takes about as long)."""
        if not uses_latency(self.config.objective):
            return None
        return self.latency(genotype).forward_ms

    def latency(self, genotype: Genotype, *, train_step: bool = False) -> Latency:
        """`genotype`'s standalone network's latency on this device (`nas.latency`), measured
        once per genotype (the training step too once asked for) and kept."""
        known = self._latencies.setdefault(genotype.id, {})
        if "forward_ms" not in known or (train_step and known.get("train_step_ms") is None):
            info = self.data.info
            network = extract_network(self.supernet, genotype)
            shape = (info.in_channels, info.input_size, info.input_size)
            step_options = ({"batch_size": self.options.batch_size,
                             "num_classes": info.num_classes,
                             "micro_batch": self.options.micro_batch} if train_step else {})
            measured = measure_latency(network, shape, device=CPU, **step_options)
            known.setdefault("forward_ms", measured.forward_ms)
            if train_step:
                known["train_step_ms"] = measured.train_step_ms
        step_ms = known.get("train_step_ms")
        return Latency(forward_ms=known["forward_ms"], train_step_ms=step_ms, device=str(CPU),
                       train_batch=None if step_ms is None else self.options.batch_size)

    def path_parameters(self, genotype: Genotype) -> int:
        """Parameters of the standalone network of `genotype` (its share of the supernet)."""
        return self.supernet.path_parameters(genotype)
