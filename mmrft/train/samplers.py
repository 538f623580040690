"""Prompt samplers: which training prompts an RL step draws, informed by how the policy did on earlier ones.

A sampler is a registered class (`data.sampler`, options in `data.sampler_options`):

    from mmrft.train.samplers import SAMPLERS, PromptSampler

    @SAMPLERS.register("my_sampler")
    class MySampler(PromptSampler):
        def __next__(self) -> list[int]: ...                  # the next batch of indices into the samples
        def observe(self, indices, pass_rates) -> None: ...   # each step's prompts and their share of correct
                                                              # completions (over all ranks, in the same order)
        def state_dict(self) -> dict: ...                     # JSON-serialisable, saved in every checkpoint
        def metrics(self) -> dict[str, float]: ...            # optional: logged each step, e.g. sampler/level

It is built as `cls(samples, batch_size, generator, **options)` on every rank with the same seed, draws the same
batches there, and is fed the same observations, so every rank holds the same state. Built in:

* `uniform` (default): a fresh random permutation each epoch, as every run drew before samplers existed.
* `difficulty`: a curriculum over the synthetic tasks' difficulty knob (`metadata.difficulty`, else the option
  `field`): draws from the levels up to the current one and moves to the next level once the running pass rate
  (an exponential mean with weight `ema` per observed prompt) of the current level reaches `advance_at` after at
  least `min_prompts` of its prompts were observed.
* `pass_rate`: online difficulty filtering at draw time (EasyR1's `online_filtering`, ROLL's `difficulty_mask`,
  applied before sampling rather than after): a prompt whose last measured pass rate lies outside [`low`, `high`]
  (too easy or too hard: little advantage to learn from) is drawn with weight `outside_weight`, the others and the
  unseen with weight 1; draws within a batch are without replacement.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mmrft.errors import ConfigError
from mmrft.registry import Registry

__all__ = ["SAMPLERS", "PromptSampler", "DifficultyCurriculum", "PassRateSampler", "build_sampler"]

SAMPLERS: Registry[Any] = Registry("prompt sampler", import_paths=True)


@SAMPLERS.register("uniform")
class PromptSampler:
    """Endless batches of dataset indices, a fresh permutation each epoch (drawn from `generator`).

    `state_dict()` holds what is left of the current epoch's order, so a resumed run draws exactly the batches the
    uninterrupted run would have (the generator's own state is checkpointed beside it). The base of every sampler:
    `observe` does nothing here."""

    def __init__(self, samples: Sequence | int, batch_size: int, generator: torch.Generator) -> None:
        n = samples if isinstance(samples, int) else len(samples)
        if n == 0:
            raise ConfigError("the training dataset is empty")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self._order = torch.empty(0, dtype=torch.long)  # this epoch's permutation (a tensor: 8 bytes a sample)
        self._next = 0  # position in it of the next index drawn

    def __iter__(self) -> "PromptSampler":
        return self

    def __next__(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.batch_size:
            if self._next >= len(self._order):
                self._order, self._next = torch.randperm(self.n, generator=self.generator), 0
            take = min(self.batch_size - len(batch), len(self._order) - self._next)
            batch += self._order[self._next:self._next + take].tolist()
            self._next += take
        return batch

    @property
    def order(self) -> list[int]:
        """What is left of this epoch's order."""
        return self._order[self._next:].tolist()

    def observe(self, indices: Sequence[int], pass_rates: Sequence[float]) -> None:
        """This step's prompts (indices into the samples) and the share of their completions that were correct."""

    def metrics(self) -> dict[str, float]:
        """What the sampler logs each step (`sampler/...`), after this step's `observe`; nothing here."""
        return {}

    def state_dict(self) -> dict:
        return {"n": self.n, "order": self.order}

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n:
            raise ConfigError(f"the checkpoint was taken on a dataset of {state['n']} samples, this one has {self.n}")
        self._order, self._next = torch.tensor(list(state.get("order", [])), dtype=torch.long), 0


def _weighted_batch(weights: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
    """`k` distinct indices drawn with probability proportional to `weights` (with repeats only when fewer than `k`
    have a weight)."""
    positive = int((weights > 0).sum())
    return torch.multinomial(weights, k, replacement=positive < k, generator=generator).tolist()


@SAMPLERS.register("difficulty")
class DifficultyCurriculum(PromptSampler):
    def __init__(self, samples: Sequence, batch_size: int, generator: torch.Generator, field: str = "difficulty",
                 advance_at: float = 0.7, min_prompts: int = 32, ema: float = 0.1) -> None:
        super().__init__(samples, batch_size, generator)
        values = [s.metadata.get(field) for s in samples]
        missing = [s.id for s, v in zip(samples, values) if not isinstance(v, (int, float))]
        if missing:
            raise ConfigError(f"data.sampler=difficulty: samples {missing[:3]} have no numeric metadata.{field} "
                              "(the synthetic tasks write it; set data.sampler_options.field)")
        self.levels = sorted(set(values))
        self.level_of = [self.levels.index(v) for v in values]
        self.advance_at, self.min_prompts, self.ema = advance_at, min_prompts, ema
        self.current, self.rate, self.seen = 0, 0.0, 0

    def __next__(self) -> list[int]:
        weights = torch.tensor([1.0 if lvl <= self.current else 0.0 for lvl in self.level_of])
        return _weighted_batch(weights, self.batch_size, self.generator)

    def observe(self, indices: Sequence[int], pass_rates: Sequence[float]) -> None:
        for i, p in zip(indices, pass_rates):
            if self.level_of[i] != self.current:
                continue
            self.seen += 1
            self.rate = p if self.seen == 1 else (1 - self.ema) * self.rate + self.ema * p
        if (self.current + 1 < len(self.levels) and self.seen >= self.min_prompts
                and self.rate >= self.advance_at):
            self.current, self.rate, self.seen = self.current + 1, 0.0, 0

    @property
    def level(self):
        """The highest difficulty drawn now."""
        return self.levels[self.current]

    def metrics(self) -> dict[str, float]:
        """`sampler/level`: the highest difficulty drawn now; `sampler/level_pass_rate`: its running pass rate."""
        return {"sampler/level": float(self.level), "sampler/level_pass_rate": self.rate}

    def state_dict(self) -> dict:
        return {"n": self.n, "current": self.current, "rate": self.rate, "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.current, self.rate, self.seen = state["current"], state["rate"], state["seen"]


@SAMPLERS.register("pass_rate")
class PassRateSampler(PromptSampler):
    def __init__(self, samples: Sequence, batch_size: int, generator: torch.Generator, low: float = 0.1,
                 high: float = 0.9, outside_weight: float = 0.1) -> None:
        super().__init__(samples, batch_size, generator)
        if not 0.0 <= low <= high <= 1.0 or not 0.0 <= outside_weight <= 1.0:
            raise ConfigError(f"data.sampler_options: need 0 <= low <= high <= 1 and 0 <= outside_weight <= 1, got "
                              f"low={low}, high={high}, outside_weight={outside_weight}")
        self.low, self.high, self.outside_weight = low, high, outside_weight
        self.rates: dict[int, float] = {}  # index -> last measured pass rate

    def weights(self) -> torch.Tensor:
        w = torch.ones(self.n)
        for i, p in self.rates.items():
            if not self.low <= p <= self.high:
                w[i] = self.outside_weight
        return w

    def __next__(self) -> list[int]:
        return _weighted_batch(self.weights(), self.batch_size, self.generator)

    def metrics(self) -> dict[str, float]:
        """`sampler/measured`: share of the prompts measured so far; `sampler/outside`: share of those whose last pass
        rate is outside [low, high] (drawn less often)."""
        outside = sum(not self.low <= p <= self.high for p in self.rates.values())
        return {"sampler/measured": len(self.rates) / self.n, "sampler/outside": outside / max(len(self.rates), 1)}

    def observe(self, indices: Sequence[int], pass_rates: Sequence[float]) -> None:
        for i, p in zip(indices, pass_rates):
            self.rates[int(i)] = float(p)

    def state_dict(self) -> dict:
        return {"n": self.n, "rates": {str(i): p for i, p in self.rates.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.rates = {int(i): float(p) for i, p in state["rates"].items()}


def build_sampler(name: str, options: dict, samples: Sequence, batch_size: int,
                  generator: torch.Generator) -> PromptSampler:
    """The sampler `name` (a registered name or `module:Class`) with `options`; errors name `data.sampler`."""
    try:
        cls = SAMPLERS[name]
    except KeyError as e:
        raise ConfigError(f"data.sampler: {e.args[0]}") from None
    try:
        return cls(samples, batch_size, generator, **dict(options or {}))
    except TypeError as e:
        raise ConfigError(f"data.sampler_options for {name!r}: {e}") from None
