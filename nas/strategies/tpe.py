"""Optuna's TPESampler over the space's decisions, through Optuna's ask-and-tell interface.

Each decision is a categorical parameter named `<cell>.b<block>.<field>` (for example
`normal.b0.input_a`) with choices `0 .. choices - 1`, the genotype's tokens. `ask` opens one
Optuna trial per genotype (state RUNNING); `tell` completes the oldest open trial of the same
genotype (same `Genotype.id`), or adds a completed trial for a genotype this strategy did not ask;
`abandon` closes the oldest open trial of the genotype as FAIL (Optuna's sampler then ignores
it), so no trial stays RUNNING once its candidate is done.

Determinism: before each trial the study gets a fresh `TPESampler` seeded from
`(seed, trial number)`, so the sampler carries no random state across trials and every
proposal is a function of the seed and the study's trials. `state_dict()` therefore holds only
the trials in number order (params, state and value; open trials have value None), and
`load_state_dict()` rebuilds an in-memory study by adding them in that order (open trials as
RUNNING, so the constant liar sees them; a state written before `abandon` existed is COMPLETE
with a value, else RUNNING), which gives the same trial numbers, the same open
trials and the same next proposals as the original.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import TPESampler
from optuna.trial import TrialState, create_trial
from pydantic import Field

from nas.strategies.base import Strategy, StrategyOptions, check_state_strategy, register_strategy
from searchspace.genotype import Genotype
from searchspace.spaces import Decision, SearchSpace


class TPEOptions(StrategyOptions):
    n_startup_trials: int = Field(10, ge=0, description="random trials before TPE starts")
    n_ei_candidates: int = Field(24, ge=1, description="candidates scored per proposal")
    multivariate: bool = Field(True, description="model the decisions jointly")
    constant_liar: bool = Field(True, description="treat open trials as bad ones (async asks)")


def param_name(decision: Decision) -> str:
    """The Optuna parameter of a decision, e.g. `normal.b0.input_a`."""
    return f"{decision.cell}.b{decision.block}.{decision.field}"


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed for trial `number` of a strategy seeded with `seed` (32 bits)."""
    digest = hashlib.sha256(f"tpe:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@register_strategy
class TPE(Strategy):
    """Tree-structured Parzen estimator (Optuna), maximising the reward."""

    name = "tpe"
    Options = TPEOptions
    options: TPEOptions

    def __init__(self, space: SearchSpace, *, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.names = [param_name(decision) for decision in space.decisions()]
        self.distributions = {
            name: CategoricalDistribution(tuple(range(decision.choices)))
            for name, decision in zip(self.names, space.decisions(), strict=True)
        }
        self.study = self._new_study()
        self.open_trials: dict[str, list[int]] = {}

    def _new_study(self) -> optuna.Study:
        return optuna.create_study(direction="maximize", sampler=self._sampler(0))

    def _sampler(self, number: int) -> TPESampler:
        return TPESampler(
            seed=trial_seed(self.seed, number),
            n_startup_trials=self.options.n_startup_trials,
            n_ei_candidates=self.options.n_ei_candidates,
            multivariate=self.options.multivariate,
            constant_liar=self.options.constant_liar,
        )

    def _genotype(self, params: dict[str, Any]) -> Genotype:
        return self.space.from_tokens([int(params[name]) for name in self.names])

    def _params(self, genotype: Genotype) -> dict[str, int]:
        return dict(zip(self.names, self.space.to_tokens(genotype), strict=True))

    def ask(self, n: int) -> list[Genotype]:
        self.check_asked(n)
        genotypes = []
        for _ in range(n):
            self.study.sampler = self._sampler(len(self.study.get_trials(deepcopy=False)))
            trial = self.study.ask(self.distributions)
            genotype = self._genotype(trial.params)
            self.open_trials.setdefault(genotype.id, []).append(trial.number)
            genotypes.append(genotype)
        return genotypes

    def tell(self, genotypes: Sequence[Genotype], rewards: Sequence[float]) -> None:
        values = self.check_told(genotypes, rewards)
        for genotype in genotypes:
            self.space.validate(genotype)
        for genotype, value in zip(genotypes, values, strict=True):
            numbers = self.open_trials.get(genotype.id)
            if numbers:
                self.study.tell(numbers.pop(0), value)
                if not numbers:
                    del self.open_trials[genotype.id]
            else:
                self.study.add_trial(create_trial(
                    params=self._params(genotype), distributions=self.distributions, value=value
                ))

    def abandon(self, genotypes: Sequence[Genotype]) -> None:
        """Close the oldest open trial of each genotype as FAIL (none open: nothing to do)."""
        super().abandon(genotypes)
        for genotype in genotypes:
            numbers = self.open_trials.get(genotype.id)
            if numbers:
                self.study.tell(numbers.pop(0), state=TrialState.FAIL)
                if not numbers:
                    del self.open_trials[genotype.id]

    def open_trial_count(self) -> int:
        """Trials asked and neither told nor abandoned."""
        return sum(map(len, self.open_trials.values()))

    def state_dict(self) -> dict[str, Any]:
        trials = []
        for trial in self.study.get_trials(deepcopy=False):
            complete = trial.state == TrialState.COMPLETE
            trials.append({
                "params": {name: int(trial.params[name]) for name in self.names},
                "state": trial.state.name,
                "value": trial.value if complete else None,
            })
        return {"strategy": self.name, "trials": trials}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_strategy(state, self.name)
        study = self._new_study()
        open_trials: dict[str, list[int]] = {}
        for number, record in enumerate(state["trials"]):
            params = {name: int(record["params"][name]) for name in self.names}
            genotype = self._genotype(params)
            state = TrialState[record.get("state") or (
                "RUNNING" if record["value"] is None else "COMPLETE")]
            if state == TrialState.COMPLETE:
                trial = create_trial(
                    params=params, distributions=self.distributions, value=float(record["value"])
                )
            else:
                trial = create_trial(state=state, params=params, distributions=self.distributions)
            if state == TrialState.RUNNING:
                open_trials.setdefault(genotype.id, []).append(number)
            study.add_trial(trial)
        self.study = study
        self.open_trials = open_trials
