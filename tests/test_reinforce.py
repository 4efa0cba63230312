"""The REINFORCE controller: valid samples, exact resume, learning on a known optimum."""

import math
import statistics

import pytest
import torch

from nas.strategies import STRATEGIES, create
from nas.strategies.reinforce import Reinforce
from nas.strategies.synthetic import TokenMatchObjective
from searchspace.spaces import DEFAULT_OPS, SearchSpace

SPACE = SearchSpace(ops=DEFAULT_OPS[:5], blocks=3)


def _best_after(strategy, objective, samples, batch=10):
    best = 0.0
    for _ in range(samples // batch):
        genotypes = strategy.ask(batch)
        rewards = [objective(genotype) for genotype in genotypes]
        best = max(best, *rewards)
        strategy.tell(genotypes, rewards)
    return best


def test_create_knows_every_strategy_and_rejects_unknown_ones():
    for name in STRATEGIES:
        assert create(name, SPACE, seed=0).name == name
    with pytest.raises(ValueError, match="unknown strategy 'bayes'"):
        create("bayes", SPACE)
    with pytest.raises(ValueError, match="lstm_sise"):
        create("reinforce", SPACE, lstm_sise=32)


def test_samples_are_valid_and_log_probabilities_match_scoring():
    strategy = Reinforce(SearchSpace(), seed=0)
    genotypes = strategy.ask(16)
    for genotype in genotypes:
        SearchSpace().validate(genotype)
    log_probability = strategy.log_probability(genotypes)
    assert log_probability.shape == (16,) and (log_probability < 0).all()


def test_seeded_sampling_does_not_touch_the_global_rng():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    first = Reinforce(SPACE, seed=3).ask(4)
    assert torch.rand(1) == before
    assert Reinforce(SPACE, seed=3).ask(4) == first
    assert Reinforce(SPACE, seed=4).ask(4) != first


@pytest.mark.parametrize("options", [
    {}, {"input_heads": "shared", "op_heads": "shared", "lstm_layers": 2},
], ids=["defaults", "enas-heads"])
def test_state_dict_resumes_exactly(options):
    objective = TokenMatchObjective(SPACE, seed=1)
    original = Reinforce(SPACE, seed=0, **options)
    for _ in range(3):
        genotypes = original.ask(5)
        original.tell(genotypes, [objective(g) for g in genotypes])
    restored = Reinforce(SPACE, seed=99, **options)
    restored.load_state_dict(original.state_dict())
    for _ in range(2):
        expected, got = original.ask(5), restored.ask(5)
        assert expected == got
        rewards = [objective(g) for g in expected]
        original.tell(expected, rewards)
        restored.tell(got, rewards)
    assert original.baseline == restored.baseline
    assert original.reward_variance == restored.reward_variance


def test_logit_clamp_bounds_the_policy():
    """2.5 * tanh(logits / 5): no op is ever more than e^5 times likelier than another."""
    strategy = Reinforce(SPACE, seed=0, lr=0.5)
    genotypes = strategy.ask(4)
    for _ in range(30):
        strategy.tell(genotypes, [1.0, 0.0, 0.0, 0.0])
    with torch.no_grad():
        logits = strategy.controller.op_scores(torch.full((1, 64), 50.0), 0)
    assert float(logits.max() - logits.min()) <= 5.0 + 1e-5
    # the least likely token of a decision with k choices has probability >= 1 / (1 + (k-1) e^5)
    floor = sum(math.log(1 + (d.choices - 1) * math.exp(5)) for d in SPACE.decisions())
    assert (strategy.log_probability(genotypes) >= -floor).all()


def test_op_prior_shifts_the_op_logits_and_names_only_known_ops():
    plain = Reinforce(SPACE, seed=0)
    biased = Reinforce(SPACE, seed=0, op_prior={"identity": -2.0})
    output = torch.zeros(1, 64)
    difference = biased.controller.op_scores(output, 0) - plain.controller.op_scores(output, 0)
    assert difference.tolist() == [[-2.0 if op == "identity" else 0.0 for op in SPACE.ops]]
    with pytest.raises(ValueError, match="conv_9x9"):
        Reinforce(SPACE, op_prior={"conv_9x9": 1.0})


def test_tell_moves_probability_towards_rewarded_genotypes():
    strategy = Reinforce(SPACE, seed=0, lr=0.05)
    genotypes = strategy.ask(8)
    good, bad = genotypes[0], genotypes[1]
    before = strategy.log_probability([good, bad])
    for _ in range(5):
        strategy.tell([good, bad], [1.0, 0.0])
    after = strategy.log_probability([good, bad])
    assert after[0] > before[0] and after[1] < before[1]


def test_bad_tell_and_ask_are_rejected():
    strategy = Reinforce(SPACE, seed=0)
    genotypes = strategy.ask(2)
    with pytest.raises(ValueError, match="2 genotypes but 1 rewards"):
        strategy.tell(genotypes, [0.5])
    with pytest.raises(ValueError, match="finite"):
        strategy.tell(genotypes, [0.5, float("nan")])
    with pytest.raises(ValueError, match="n >= 1"):
        strategy.ask(0)
    with pytest.raises(ValueError, match="strategy"):
        strategy.load_state_dict(create("random", SPACE).state_dict())


def test_reinforce_matches_evolution_and_beats_random_on_hidden_targets():
    """Reward = share of decisions equal to a hidden target (optimum 1.0), 400 samples in
    batches of 10, 3 targets, every strategy with its defaults."""
    best = {name: [] for name in ("reinforce", "evolution", "random")}
    for seed in range(3):
        objective = TokenMatchObjective(SPACE, seed=100 + seed)
        for name in best:
            best[name].append(_best_after(create(name, SPACE, seed=seed), objective, 400))
    mean = {name: statistics.mean(values) for name, values in best.items()}
    assert mean["reinforce"] >= 0.85 and mean["evolution"] >= 0.8
    assert mean["reinforce"] >= mean["evolution"]
    assert mean["evolution"] > mean["random"] + 0.1
