"""Zoph/ENAS REINFORCE controller: an LSTM that writes both cells decision by decision.

For each block of each searched cell the LSTM emits input_a, op_a, input_b, op_b. Inputs are
chosen by attention over the hidden states of the cell's earlier states (ENAS micro search);
ops by a softmax of the LSTM output, one per op decision as in Zoph et al. (ENAS shares
one softmax across decisions: `op_heads="shared"`; measured on the synthetic objective, the
shared softmax collapses onto one op everywhere). Logits are divided by an optional temperature and
squashed by `tanh_constant * tanh(.)` (divided by `op_tanh_reduce` for ops), as in ENAS.

`tell` re-scores the told genotypes under the current controller (teacher forcing), so the
update needs nothing remembered from `ask`: reward plus `entropy_weight` x entropy, minus an
exponential-moving-average baseline, times the log-probability, averaged over the batch, one
Adam step. Defaults are those of the ENAS authors' micro-search code.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nas.seeding import stream_seed
from nas.strategies.base import Strategy, StrategyOptions, check_state_strategy
from searchspace.genotype import Genotype
from searchspace.spaces import SearchSpace


class ReinforceOptions(StrategyOptions):
    lstm_size: int = Field(64, ge=4)
    lstm_layers: int = Field(2, ge=1)
    lr: float = Field(0.0035, gt=0)
    temperature: float | None = Field(None, gt=0)
    tanh_constant: float | None = Field(1.10, gt=0)
    op_tanh_reduce: float = Field(2.5, gt=0)
    entropy_weight: float = Field(1e-4, ge=0)
    baseline_decay: float = Field(0.99, ge=0, lt=1)
    grad_clip: float = Field(5.0, gt=0)
    op_heads: Literal["shared", "per_decision"] = Field(
        "per_decision",
        description="one op softmax per decision (Zoph) or one shared by all decisions (ENAS)",
    )


class Controller(nn.Module):
    """The LSTM policy over a space's decisions; `run` samples or scores a batch of sequences."""

    def __init__(self, space: SearchSpace, options: ReinforceOptions) -> None:
        super().__init__()
        size = options.lstm_size
        self.space = space
        self.options = options
        self.lstm = nn.ModuleList(nn.LSTMCell(size, size) for _ in range(options.lstm_layers))
        self.start = nn.Parameter(torch.empty(1, size).uniform_(-0.1, 0.1))
        self.op_embedding = nn.Embedding(len(space.ops), size)
        op_decisions = sum(decision.kind == "op" for decision in space.decisions())
        heads = 1 if options.op_heads == "shared" else op_decisions
        self.op_logits = nn.ModuleList(nn.Linear(size, len(space.ops)) for _ in range(heads))
        self.attention_anchor = nn.Linear(size, size, bias=False)
        self.attention_query = nn.Linear(size, size, bias=False)
        self.attention_score = nn.Linear(size, 1, bias=False)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.1, 0.1)

    def run(
        self, batch: int, tokens: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample `batch` sequences (or score the given `tokens`, shape (batch, decisions)).

        Returns the tokens, their summed log-probabilities and summed entropies, each per row.
        """
        size = self.options.lstm_size
        hidden = [torch.zeros(batch, size) for _ in self.lstm]
        cell_state = [torch.zeros(batch, size) for _ in self.lstm]
        rows = torch.arange(batch)
        chosen, log_prob, entropy = [], torch.zeros(batch), torch.zeros(batch)

        def step(inputs: torch.Tensor) -> torch.Tensor:
            for layer, lstm in enumerate(self.lstm):
                hidden[layer], cell_state[layer] = lstm(inputs, (hidden[layer], cell_state[layer]))
                inputs = hidden[layer]
            return inputs

        def decide(logits: torch.Tensor, tanh_constant: float | None) -> torch.Tensor:
            nonlocal log_prob, entropy
            if self.options.temperature is not None:
                logits = logits / self.options.temperature
            if tanh_constant is not None:
                logits = tanh_constant * torch.tanh(logits)
            log_probs = F.log_softmax(logits, dim=-1)
            if tokens is None:
                token = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
            else:
                token = tokens[:, len(chosen)]
            chosen.append(token)
            log_prob = log_prob + log_probs[rows, token]
            entropy = entropy - (log_probs.exp() * log_probs).sum(-1)
            return token

        op_tanh = (self.options.tanh_constant / self.options.op_tanh_reduce
                   if self.options.tanh_constant is not None else None)
        inputs = self.start.expand(batch, size)
        op_decision = 0
        for _cell in self.space.cells:
            anchors, anchor_keys = [], []
            for _ in range(2):  # the cell's two inputs
                output = step(inputs)
                anchors.append(torch.zeros(batch, size))
                anchor_keys.append(self.attention_anchor(output))
            for _block in range(self.space.blocks):
                for _input in range(2):
                    output = step(inputs)
                    keys = torch.stack(anchor_keys, dim=1)
                    query = self.attention_query(output).unsqueeze(1)
                    scores = self.attention_score(torch.tanh(keys + query)).squeeze(-1)
                    source = decide(scores, self.options.tanh_constant)
                    output = step(torch.stack(anchors, dim=1)[rows, source])
                    head = self.op_logits[op_decision % len(self.op_logits)]
                    op = decide(head(output), op_tanh)
                    op_decision += 1
                    inputs = self.op_embedding(op)
                output = step(inputs)
                anchors.append(output)
                anchor_keys.append(self.attention_anchor(output))
                inputs = self.start.expand(batch, size)
        return torch.stack(chosen, dim=1), log_prob, entropy


class Reinforce(Strategy):
    """REINFORCE with an EMA baseline and an entropy bonus over an LSTM controller."""

    name = "reinforce"
    Options = ReinforceOptions

    def __init__(self, space: SearchSpace, *, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        with torch.random.fork_rng(devices=[]):  # seed the initial weights, not the caller's RNG
            torch.manual_seed(stream_seed(seed, "reinforce-controller"))
            self.controller = Controller(space, self.options)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.options.lr)
        self.generator = torch.Generator().manual_seed(stream_seed(seed, "reinforce-sampling"))
        self.baseline: float | None = None
        self.updates = 0

    def ask(self, n: int) -> list[Genotype]:
        self.check_asked(n)
        with torch.no_grad():
            tokens, _, _ = self.controller.run(n, generator=self.generator)
        return [self.space.from_tokens(row) for row in tokens.tolist()]

    def tell(self, genotypes: Sequence[Genotype], rewards: Sequence[float]) -> None:
        values = self.check_told(genotypes, rewards)
        tokens = self._tokens(genotypes)
        _, log_prob, entropy = self.controller.run(len(genotypes), tokens=tokens)
        reward = torch.tensor(values) + self.options.entropy_weight * entropy.detach()
        if self.baseline is None:
            self.baseline = float(reward.mean())
        advantage = reward - self.baseline
        loss = -(log_prob * advantage).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.controller.parameters(), self.options.grad_clip)
        self.optimizer.step()
        decay = self.options.baseline_decay
        for value in reward.tolist():
            self.baseline = decay * self.baseline + (1 - decay) * value
        self.updates += 1

    def log_probability(self, genotypes: Sequence[Genotype]) -> torch.Tensor:
        """Log-probability of each genotype under the current controller."""
        tokens = self._tokens(genotypes)
        with torch.no_grad():
            return self.controller.run(len(genotypes), tokens=tokens)[1]

    def _tokens(self, genotypes: Sequence[Genotype]) -> torch.Tensor:
        return torch.tensor([self.space.to_tokens(genotype) for genotype in genotypes])

    def state_dict(self) -> dict[str, Any]:
        """A deep copy: the returned tensors do not change when this strategy learns on."""
        return copy.deepcopy({
            "strategy": self.name,
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "baseline": self.baseline,
            "updates": self.updates,
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_strategy(state, self.name)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.updates = state["updates"]
