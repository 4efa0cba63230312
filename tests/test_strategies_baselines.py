"""Baseline strategies (random, regularized evolution, TPE): ask/tell contract, seeding, state
round trips, and search quality on the synthetic token-match objective."""

import json
import math
import random
from statistics import mean

import pytest

from nas.strategies.base import Strategy
from nas.strategies.evolution import RegularizedEvolution, mutate
from nas.strategies.random import RandomSearch
from nas.strategies.synthetic import TokenMatchObjective
from nas.strategies.tpe import TPE
from searchspace.genotype import Genotype
from searchspace.spaces import DEFAULT_OPS, SearchSpace

SPACE = SearchSpace(ops=DEFAULT_OPS[:5], blocks=3)
NORMAL_ONLY = SearchSpace(ops=DEFAULT_OPS[:4], blocks=2, cells=("normal",))

# Small options so that a few rounds already reach the model-based / mutation phases.
FAST = [
    (RandomSearch, {}),
    (RegularizedEvolution, {"population_size": 4, "tournament_size": 2}),
    (TPE, {"n_startup_trials": 3}),
]
FAST_IDS = [cls.name for cls, _ in FAST]


def run_rounds(strategy: Strategy, objective: TokenMatchObjective, rounds: int,
               batch: int = 2) -> list[Genotype]:
    """Ask `batch`, tell their rewards, `rounds` times; the asked genotypes in order."""
    asked = []
    for _ in range(rounds):
        genotypes = strategy.ask(batch)
        strategy.tell(genotypes, [objective(genotype) for genotype in genotypes])
        asked += genotypes
    return asked


@pytest.mark.parametrize("space", [SPACE, NORMAL_ONLY], ids=["both-cells", "normal-only"])
@pytest.mark.parametrize(("cls", "options"), FAST, ids=FAST_IDS)
def test_asks_are_genotypes_of_the_space(cls, options, space):
    strategy = cls(space, seed=0, **options)
    asked = run_rounds(strategy, TokenMatchObjective(space, seed=1), rounds=6)
    assert len(asked) == 12
    for genotype in asked:
        assert isinstance(genotype, Genotype)
        space.validate(genotype)


@pytest.mark.parametrize(("cls", "options"), FAST, ids=FAST_IDS)
def test_same_seed_same_sequence(cls, options):
    objective = TokenMatchObjective(SPACE, seed=1)
    first = run_rounds(cls(SPACE, seed=3, **options), objective, rounds=6)
    second = run_rounds(cls(SPACE, seed=3, **options), objective, rounds=6)
    other = run_rounds(cls(SPACE, seed=4, **options), objective, rounds=6)
    assert first == second
    assert first != other


@pytest.mark.parametrize(("cls", "options"), FAST, ids=FAST_IDS)
def test_state_round_trip_continues_identically(cls, options):
    objective = TokenMatchObjective(SPACE, seed=1)
    original = cls(SPACE, seed=5, **options)
    run_rounds(original, objective, rounds=4)
    pending = original.ask(2)  # asked, not yet told, when the state is saved
    state = json.loads(json.dumps(original.state_dict()))

    restored = cls(SPACE, seed=5, **options)
    restored.load_state_dict(state)
    assert json.loads(json.dumps(restored.state_dict())) == state
    for strategy in (original, restored):
        strategy.tell(pending, [objective(genotype) for genotype in pending])
    assert run_rounds(restored, objective, rounds=5) == run_rounds(original, objective, rounds=5)


@pytest.mark.parametrize(("cls", "options"), [
    (RandomSearch, {"population_size": 3}),
    (RegularizedEvolution, {"population_size": 1}),
    (RegularizedEvolution, {"tournament_size": 0}),
    (RegularizedEvolution, {"population_size": 4, "tournament_size": 5}),
    (RegularizedEvolution, {"mutation_rate": 0.5}),
    (TPE, {"n_startup_trials": -1}),
    (TPE, {"n_ei_candidates": 0}),
    (TPE, {"gamma": 0.1}),
])
def test_bad_options_raise(cls, options):
    with pytest.raises(ValueError):
        cls(SPACE, seed=0, **options)


@pytest.mark.parametrize(("cls", "options"), FAST, ids=FAST_IDS)
def test_bad_calls_raise_and_change_nothing(cls, options):
    strategy = cls(SPACE, seed=0, **options)
    untouched = cls(SPACE, seed=0, **options)  # the same calls, without the failing ones
    genotypes = strategy.ask(2)
    assert untouched.ask(2) == genotypes
    for n in (0, -1):
        with pytest.raises(ValueError, match="n >= 1"):
            strategy.ask(n)
    with pytest.raises(ValueError, match="2 genotypes but 1 rewards"):
        strategy.tell(genotypes, [0.5])
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            strategy.tell(genotypes, [0.5, bad])
    outside = NORMAL_ONLY.sample(random.Random(0))
    with pytest.raises(ValueError):
        strategy.tell([outside], [0.5])
    with pytest.raises(ValueError, match="written by strategy"):
        strategy.load_state_dict({"strategy": "something-else"})
    # the failed calls changed nothing: told the same, both go on alike
    objective = TokenMatchObjective(SPACE, seed=1)
    strategy.tell(genotypes, [0.1, 0.2])
    untouched.tell(genotypes, [0.1, 0.2])
    assert run_rounds(strategy, objective, rounds=4) == run_rounds(untouched, objective, rounds=4)


def test_random_search_is_uniform_sampling_of_the_space():
    rng = random.Random(7)
    assert RandomSearch(SPACE, seed=7).ask(5) == [SPACE.sample(rng) for _ in range(5)]


def test_evolution_samples_randomly_until_the_population_is_full():
    evolution = RegularizedEvolution(SPACE, seed=2, population_size=6, tournament_size=2)
    random_search = RandomSearch(SPACE, seed=2)
    assert evolution.ask(4) == random_search.ask(4)  # asked but not told: still not full
    asked = evolution.ask(2)
    assert asked == random_search.ask(2)
    evolution.tell(asked, [0.0, 0.0])
    assert len(evolution.population) == 2


def test_evolution_child_is_one_mutation_of_the_tournament_winner():
    objective = TokenMatchObjective(SPACE, seed=1)
    evolution = RegularizedEvolution(SPACE, seed=0, population_size=5, tournament_size=5)
    run_rounds(evolution, objective, rounds=3)
    best, _ = max(evolution.population, key=lambda member: member[1])
    for child in evolution.ask(10):
        differences = sum(
            a != b for a, b in zip(SPACE.to_tokens(child), SPACE.to_tokens(best), strict=True)
        )
        assert differences == 1


def test_evolution_population_ages_out_the_oldest():
    evolution = RegularizedEvolution(SPACE, seed=0, population_size=3, tournament_size=2)
    genotypes = evolution.ask(3)
    evolution.tell(genotypes, [0.9, 0.1, 0.2])
    newcomer = evolution.ask(1)
    evolution.tell(newcomer, [0.0])
    assert list(evolution.population) == [(genotypes[1], 0.1), (genotypes[2], 0.2),
                                          (newcomer[0], 0.0)]


def test_mutation_changes_exactly_one_decision_to_a_valid_value():
    rng = random.Random(0)
    for space in (SPACE, NORMAL_ONLY):
        for _ in range(50):
            parent = space.sample(rng)
            child = mutate(space, parent, rng)
            space.validate(child)
            pairs = zip(space.to_tokens(parent), space.to_tokens(child), strict=True)
            assert sum(a != b for a, b in pairs) == 1
            assert child.id != parent.id


def test_tpe_trials_follow_the_asks_and_tells():
    tpe = TPE(SPACE, seed=0, n_startup_trials=2)
    asked = tpe.ask(3)
    trials = tpe.study.get_trials(deepcopy=False)
    assert [trial.params["normal.b0.input_a"] for trial in trials] == [
        SPACE.to_tokens(genotype)[0] for genotype in asked
    ]
    assert sorted(trials[0].params) == sorted(
        f"{cell}.b{block}.{field}" for cell in ("normal", "reduction") for block in range(3)
        for field in ("input_a", "op_a", "input_b", "op_b")
    )
    tpe.tell(asked[1:2], [0.5])
    stranger = RandomSearch(SPACE, seed=99).ask(1)
    tpe.tell(stranger, [0.25])  # not asked by this strategy: added as a completed trial
    states = [trial.state.name for trial in tpe.study.get_trials(deepcopy=False)]
    assert states == ["RUNNING", "COMPLETE", "RUNNING", "COMPLETE"]
    assert tpe.study.trials[3].value == 0.25
    assert tpe.state_dict()["trials"][0]["value"] is None


def test_token_match_objective():
    objective = TokenMatchObjective(SPACE, seed=3)
    assert objective(objective.target) == 1.0
    assert TokenMatchObjective(SPACE, seed=3).target == objective.target
    rewards = [objective(genotype) for genotype in RandomSearch(SPACE, seed=0).ask(50)]
    assert all(0.0 <= reward < 1.0 for reward in rewards)
    assert 0.15 < mean(rewards) < 0.45


def best_so_far(strategy: Strategy, objective: TokenMatchObjective, samples: int) -> float:
    """The best reward among the first `samples` genotypes, asked and told one by one."""
    best = 0.0
    for _ in range(samples):
        genotypes = strategy.ask(1)
        reward = objective(genotypes[0])
        strategy.tell(genotypes, [reward])
        best = max(best, reward)
    return best


def mean_best(cls: type[Strategy], samples: int, seeds: range) -> float:
    return mean(best_so_far(cls(SPACE, seed=seed), TokenMatchObjective(SPACE, seed=100 + seed),
                            samples) for seed in seeds)


def test_evolution_finds_the_hidden_target_better_than_random():
    seeds = range(5)
    evolution = mean_best(RegularizedEvolution, 400, seeds)
    random_search = mean_best(RandomSearch, 400, seeds)
    assert evolution >= 0.8
    assert evolution > random_search + 0.15


def test_tpe_beats_random_on_the_hidden_target():
    seeds = range(3)
    assert mean_best(TPE, 150, seeds) > mean_best(RandomSearch, 150, seeds) + 0.05


def test_tpe_abandon_fails_the_trial_and_the_state_keeps_it():
    tpe = TPE(SPACE, seed=0, n_startup_trials=2)
    asked = tpe.ask(3)
    tpe.tell(asked[:1], [0.5])
    tpe.abandon(asked[1:])
    states = [trial.state.name for trial in tpe.study.get_trials(deepcopy=False)]
    assert states == ["COMPLETE", "FAIL", "FAIL"] and tpe.open_trial_count() == 0
    tpe.abandon(asked[1:2])  # nothing open for it any more: nothing happens
    restored = TPE(SPACE, seed=0, n_startup_trials=2)
    restored.load_state_dict(tpe.state_dict())
    assert [t.state.name for t in restored.study.get_trials(deepcopy=False)] == states
    assert restored.ask(2) == tpe.ask(2)  # FAIL trials restored as FAIL: same proposals


def test_tpe_loads_a_state_written_before_trials_had_a_state():
    tpe = TPE(SPACE, seed=0, n_startup_trials=2)
    asked = tpe.ask(2)
    tpe.tell(asked[:1], [0.5])
    old = {"strategy": "tpe", "trials": [{"params": trial["params"], "value": trial["value"]}
                                         for trial in tpe.state_dict()["trials"]]}
    restored = TPE(SPACE, seed=0, n_startup_trials=2)
    restored.load_state_dict(old)
    assert [t.state.name for t in restored.study.get_trials(deepcopy=False)] == [
        "COMPLETE", "RUNNING"]
    restored.tell(asked[1:], [0.25])  # the open trial is found again by its genotype
    assert restored.open_trial_count() == 0


@pytest.mark.parametrize("cls", [RandomSearch, RegularizedEvolution])
def test_abandon_checks_the_genotypes_and_changes_nothing(cls):
    strategy = cls(SPACE, seed=0)
    asked = strategy.ask(2)
    before = json.dumps(strategy.state_dict())
    strategy.abandon(asked)
    assert json.dumps(strategy.state_dict()) == before
    with pytest.raises(ValueError):
        strategy.abandon([NORMAL_ONLY.sample(random.Random(0))])  # not of this space
