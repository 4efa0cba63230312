"""The search objective: one formula for every evaluator (MnasNet, Tan et al. 2019).

    reward = accuracy * (params / params_target) ** params_weight
                      * (multiply_adds / multiply_adds_target) ** multiply_adds_weight
                      * (latency_ms / latency_target_ms) ** latency_weight

each factor only when its target is set; latency is `nas.latency.forward_ms` (batch 1, on the
device the search runs on). Weights are <= 0, a soft constraint as MnasNet's
w = -0.07: a network above its target loses reward, one below gains a little.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nas.config import ObjectiveConfig


def uses_params(objective: ObjectiveConfig) -> bool:
    return objective.params_target is not None


def uses_multiply_adds(objective: ObjectiveConfig) -> bool:
    return objective.multiply_adds_target is not None


def uses_latency(objective: ObjectiveConfig) -> bool:
    return objective.latency_target_ms is not None


def objective_reward(objective: ObjectiveConfig, accuracy: float, params: int | None,
                     multiply_adds: int | None = None, latency_ms: float | None = None
                     ) -> float | None:
    """The reward of a candidate of `accuracy`, `params` parameters, `multiply_adds`
    multiply-adds per input and `latency_ms` per input; None when a targeted measure is
    unknown."""
    reward = accuracy
    for target, weight, value in (
        (objective.params_target, objective.params_weight, params),
        (objective.multiply_adds_target, objective.multiply_adds_weight, multiply_adds),
        (objective.latency_target_ms, objective.latency_weight, latency_ms),
    ):
        if target is None:
            continue
        if value is None:
            return None
        reward *= (value / target) ** weight
    return reward
