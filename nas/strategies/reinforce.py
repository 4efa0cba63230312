"""Zoph/ENAS controller: an LSTM that writes both cells decision by decision, trained by
REINFORCE (Zoph & Le; ENAS).

For each block of each searched cell the LSTM emits input_a, op_a, input_b, op_b, each from
a softmax head of its own over the LSTM output, as Zoph et al. (`input_heads="shared"`
chooses inputs by ENAS's attention over the earlier states instead, `op_heads="shared"` uses
ENAS's one op softmax; on token-matching targets the attention did not learn the inputs
within 1,200 samples). Logits are clamped as ENAS does, `tanh_constant * tanh(logits /
temperature)` (the bound divided by `op_tanh_reduce` for ops), and an optional fixed per-op
bias (`op_prior`, ENAS's `b_soft_no_learn`) is added after the clamp.

`tell` re-scores the told genotypes under the current controller (teacher forcing), so the
update needs nothing remembered from `ask`: reward plus `entropy_weight` x entropy, minus an
exponential-moving-average baseline (`baseline_decay` per reward), divided by the rewards'
moving standard deviation (`normalize_advantage`), times the log-probability, averaged over
the batch; one Adam step (beta1 = 0 as ENAS). The defaults were chosen on token-matching
targets other than those of bench/strategies.py (docs/benchmarks.md, "Search strategies"):
the clamp 2.5 * tanh(logits / 5) keeps the policy from collapsing early, the learning rate
and the normalised advantage let it move within a thousand samples rather than ENAS's tens
of thousands.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nas.seeding import stream_seed
from nas.strategies.base import (
    IncompatibleState,
    Strategy,
    StrategyOptions,
    check_state_strategy,
    register_strategy,
)
from searchspace.genotype import Genotype
from searchspace.spaces import SearchSpace

# The controller's model and update rule, as a checkpoint records them. Format 1 (releases before
# this one: two LSTM layers, attention over inputs, a per-batch baseline) has no "format" key.
STATE_FORMAT = 2


class ReinforceOptions(StrategyOptions):
    lstm_size: int = Field(64, ge=4)
    lstm_layers: int = Field(1, ge=1)
    lr: float = Field(0.01, gt=0)
    adam_beta1: float = Field(0.0, ge=0, lt=1)
    temperature: float | None = Field(5.0, gt=0)
    tanh_constant: float | None = Field(2.5, gt=0)
    op_tanh_reduce: float = Field(1.0, gt=0)
    op_prior: dict[str, float] = Field(
        default_factory=dict,
        description="fixed logit added to an op's score after the clamp (ENAS b_soft_no_learn)",
    )
    entropy_weight: float = Field(1e-4, ge=0)
    baseline_decay: float = Field(0.95, ge=0, lt=1)
    normalize_advantage: bool = True
    grad_clip: float = Field(5.0, gt=0)
    op_heads: Literal["shared", "per_decision"] = Field(
        "per_decision",
        description="one op softmax per decision (Zoph) or one shared by all decisions (ENAS)",
    )
    input_heads: Literal["shared", "per_decision"] = Field(
        "per_decision",
        description="a softmax head per input decision (Zoph) or attention over the earlier "
                    "states' keys (ENAS)",
    )

    def check_ops(self, ops: Sequence[str]) -> None:
        unknown = sorted(set(self.op_prior) - set(ops))
        if unknown:
            raise ValueError(f"strategy.op_prior names ops not in the space: "
                             f"{', '.join(unknown)}")


@dataclass
class Decisions:
    """The decisions of one batch as `run` makes them: sampled, or read from `given` tokens;
    with their summed log-probabilities and entropies per row."""

    batch: int
    given: torch.Tensor | None = None
    generator: torch.Generator | None = None
    tokens: list[torch.Tensor] = field(default_factory=list)
    log_prob: torch.Tensor = field(init=False)
    entropy: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.log_prob = torch.zeros(self.batch)
        self.entropy = torch.zeros(self.batch)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """The next token of each row under `logits` (batch, choices)."""
        log_probs = F.log_softmax(logits, dim=-1)
        if self.given is None:
            token = torch.multinomial(log_probs.exp(), 1, generator=self.generator).squeeze(1)
        else:
            token = self.given[:, len(self.tokens)]
        self.tokens.append(token)
        self.log_prob = self.log_prob + log_probs.gather(1, token.unsqueeze(1)).squeeze(1)
        self.entropy = self.entropy - (log_probs.exp() * log_probs).sum(-1)
        return token


class LSTMStack(nn.ModuleList):
    """Stacked LSTM cells whose states the controller carries from decision to decision."""

    def __init__(self, size: int, layers: int) -> None:
        super().__init__(nn.LSTMCell(size, size) for _ in range(layers))

    def initial(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        size = self[0].hidden_size
        return [(torch.zeros(batch, size), torch.zeros(batch, size)) for _ in self]

    def step(self, inputs: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]]
             ) -> torch.Tensor:
        """Advance `state` in place by one input; the top layer's output."""
        for layer, cell in enumerate(self):
            state[layer] = cell(inputs, state[layer])
            inputs = state[layer][0]
        return inputs


class Attention(nn.Module):
    """ENAS's input choice: additive attention of the LSTM output over earlier states' keys."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.anchor = nn.Linear(size, size, bias=False)
        self.query = nn.Linear(size, size, bias=False)
        self.score = nn.Linear(size, 1, bias=False)

    def forward(self, output: torch.Tensor, keys: Sequence[torch.Tensor | None]) -> torch.Tensor:
        stacked = torch.stack(list(keys), dim=1)  # type: ignore[arg-type]  (never None here)
        return self.score(torch.tanh(stacked + self.query(output).unsqueeze(1))).squeeze(-1)


class Controller(nn.Module):
    """The LSTM policy over a space's decisions; `run` samples or scores a batch of sequences."""

    def __init__(self, space: SearchSpace, options: ReinforceOptions) -> None:
        super().__init__()
        size = options.lstm_size
        self.space = space
        self.options = options
        self.lstm = LSTMStack(size, options.lstm_layers)
        self.start = nn.Parameter(torch.empty(1, size))
        self.op_embedding = nn.Embedding(len(space.ops), size)
        op_decisions = sum(decision.kind == "op" for decision in space.decisions())
        heads = 1 if options.op_heads == "shared" else op_decisions
        self.op_logits = nn.ModuleList(nn.Linear(size, len(space.ops)) for _ in range(heads))
        if options.input_heads == "shared":
            self.attention: Attention | None = Attention(size)
        else:
            self.attention = None
            self.input_heads = nn.ModuleList(
                nn.Linear(size, decision.choices) for decision in space.decisions()
                if decision.kind == "input")
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.1, 0.1)
        options.check_ops(space.ops)
        self.register_buffer("op_prior", torch.tensor(
            [options.op_prior.get(op, 0.0) for op in space.ops]), persistent=False)

    def clamp(self, logits: torch.Tensor, reduce: float = 1.0) -> torch.Tensor:
        """ENAS's logit clamp: divided by the temperature, squashed by tanh into
        +-tanh_constant / reduce."""
        if self.options.temperature is not None:
            logits = logits / self.options.temperature
        if self.options.tanh_constant is not None:
            logits = self.options.tanh_constant / reduce * torch.tanh(logits)
        return logits

    def run(self, batch: int, tokens: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> Decisions:
        """Sample `batch` sequences (or score the given `tokens`, shape (batch, decisions))."""
        decisions = Decisions(batch, tokens, generator)
        state = self.lstm.initial(batch)
        for _cell in self.space.cells:
            self.write_cell(decisions, state)
        return decisions

    def write_cell(self, decisions: Decisions, state: list[tuple[torch.Tensor, torch.Tensor]]
                   ) -> None:
        """One cell's blocks; each block's output becomes an input the later blocks attend to."""
        batch = decisions.batch
        inputs = self.start.expand(batch, -1)
        anchors, anchor_keys = [], []
        for _ in range(2):  # the cell's two inputs
            output = self.lstm.step(inputs, state)
            anchors.append(torch.zeros_like(output))
            anchor_keys.append(self.key(output))
        for _block in range(self.space.blocks):
            for _input in range(2):
                output = self.lstm.step(inputs, state)
                source = decisions.decide(
                    self.input_logits(output, anchor_keys, len(decisions.tokens) // 2))
                chosen = torch.stack(anchors, dim=1)[torch.arange(batch), source]
                output = self.lstm.step(chosen, state)
                op = decisions.decide(self.op_scores(output, len(decisions.tokens) // 2))
                inputs = self.op_embedding(op)
            output = self.lstm.step(inputs, state)
            anchors.append(output)
            anchor_keys.append(self.key(output))
            inputs = self.start.expand(batch, -1)

    def key(self, output: torch.Tensor) -> torch.Tensor | None:
        """What later input decisions attend to for this state (None without attention)."""
        return None if self.attention is None else self.attention.anchor(output)

    def input_logits(self, output: torch.Tensor, anchor_keys: list[torch.Tensor | None],
                     input_decision: int) -> torch.Tensor:
        """The clamped logits of input decision `input_decision`: its own softmax head over the
        states it may read (Zoph), or attention of `output` over their keys (ENAS)."""
        if self.attention is None:
            return self.clamp(self.input_heads[input_decision](output))
        return self.clamp(self.attention(output, anchor_keys))

    def op_scores(self, output: torch.Tensor, op_decision: int) -> torch.Tensor:
        """The op logits of decision `op_decision` (its own head or the shared one), clamped,
        plus the fixed op prior."""
        head = self.op_logits[op_decision % len(self.op_logits)]
        return self.clamp(head(output), self.options.op_tanh_reduce) + self.op_prior


@register_strategy
class Reinforce(Strategy):
    """REINFORCE with an EMA baseline and an entropy bonus over an LSTM controller."""

    name = "reinforce"
    Options = ReinforceOptions
    options: ReinforceOptions

    def __init__(self, space: SearchSpace, *, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        with torch.random.fork_rng(devices=[]):  # seed the initial weights, not the caller's RNG
            torch.manual_seed(stream_seed(seed, "reinforce-controller"))
            self.controller = Controller(space, self.options)
        self.optimizer = torch.optim.Adam(
            self.controller.parameters(), lr=self.options.lr,
            betas=(self.options.adam_beta1, 0.999), eps=1e-3)
        self.generator = torch.Generator().manual_seed(stream_seed(seed, "reinforce-sampling"))
        self.baseline: float | None = None
        self.reward_variance = 0.0
        self.updates = 0

    def ask(self, n: int) -> list[Genotype]:
        self.check_asked(n)
        with torch.no_grad():
            tokens = torch.stack(self.controller.run(n, generator=self.generator).tokens, dim=1)
        return [self.space.from_tokens(row) for row in tokens.tolist()]

    def tell(self, genotypes: Sequence[Genotype], rewards: Sequence[float]) -> None:
        values = self.check_told(genotypes, rewards)
        tokens = self._tokens(genotypes)
        scored = self.controller.run(len(genotypes), tokens=tokens)
        reward = torch.tensor(values) + self.options.entropy_weight * scored.entropy.detach()
        loss = -(scored.log_prob * self.advantage(reward)).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.controller.parameters(), self.options.grad_clip)
        self.optimizer.step()
        self.updates += 1

    def advantage(self, reward: torch.Tensor) -> torch.Tensor:
        """Reward minus the baseline, optionally divided by the rewards' standard deviation.

        The baseline and the variance are exponential moving averages over the told rewards,
        one decay per reward (so the memory in rewards does not depend on the batch size),
        updated with this batch before use, as ENAS updates its baseline.
        """
        values = reward.tolist()
        if self.baseline is None:
            self.baseline = statistics.fmean(values)
            self.reward_variance = statistics.pvariance(values)
        decay = self.options.baseline_decay
        for value in values:
            delta = value - self.baseline
            self.baseline += (1 - decay) * delta
            self.reward_variance = decay * (self.reward_variance + (1 - decay) * delta ** 2)
        advantage = reward - self.baseline
        std = math.sqrt(self.reward_variance)
        if self.options.normalize_advantage and std > 1e-6:
            advantage = advantage / std
        return advantage

    def log_probability(self, genotypes: Sequence[Genotype]) -> torch.Tensor:
        """Log-probability of each genotype under the current controller."""
        tokens = self._tokens(genotypes)
        with torch.no_grad():
            return self.controller.run(len(genotypes), tokens=tokens).log_prob

    def _tokens(self, genotypes: Sequence[Genotype]) -> torch.Tensor:
        return torch.tensor([self.space.to_tokens(genotype) for genotype in genotypes])

    def state_dict(self) -> dict[str, Any]:
        """A deep copy: the returned tensors do not change when this strategy learns on."""
        return copy.deepcopy({
            "strategy": self.name,
            "format": STATE_FORMAT,
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "baseline": self.baseline,
            "reward_variance": self.reward_variance,
            "updates": self.updates,
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_strategy(state, self.name)
        written = state.get("format", 1)
        if written != STATE_FORMAT:
            raise IncompatibleState(
                f"this search's REINFORCE controller was checkpointed in format {written} (an "
                f"older release); this release continues format {STATE_FORMAT} only. Its "
                f"architectures are kept: show or export them, or search anew from its config")
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.reward_variance = state.get("reward_variance", 0.0)
        self.updates = state["updates"]
