"""The search objective (nas.objective): MnasNet's soft targets on parameters and mult-adds."""

import pytest

from nas.config import ObjectiveConfig
from nas.objective import objective_reward


def test_without_targets_the_reward_is_the_accuracy():
    assert objective_reward(ObjectiveConfig(), 0.8, None, None) == 0.8


def test_each_target_multiplies_the_accuracy_by_its_ratio_to_the_weight():
    objective = ObjectiveConfig(params_target=1000, params_weight=-0.07,
                                multiply_adds_target=50_000, multiply_adds_weight=-0.5)
    assert objective_reward(objective, 0.8, 2000, 200_000) == pytest.approx(
        0.8 * 2 ** -0.07 * 4 ** -0.5)
    assert objective_reward(objective, 0.8, 1000, 50_000) == pytest.approx(0.8)
    smaller = objective_reward(objective, 0.8, 500, 50_000)
    assert smaller > 0.8  # a soft target: below it, a little more reward


def test_a_targeted_measure_that_is_unknown_gives_no_reward():
    objective = ObjectiveConfig(multiply_adds_target=50_000)
    assert objective_reward(objective, 0.8, 1000, None) is None
    assert objective.reward(0.8, None, 50_000) == pytest.approx(0.8)


def test_a_latency_target_multiplies_like_the_others():
    objective = ObjectiveConfig(latency_target_ms=4.0, latency_weight=-0.5)
    assert objective.reward(0.8, None, None, 16.0) == pytest.approx(0.8 * 4 ** -0.5)
    assert objective.reward(0.8, None, None, 4.0) == pytest.approx(0.8)
    assert objective.reward(0.8, 1000, 50_000, None) is None
