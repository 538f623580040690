"""Prompt samplers: the interface with a user-registered sampler in a real RL run (it draws the prompts, it is told
each prompt's pass rate, its state resumes), and the built-in curriculum and pass-rate samplers on hand-made
observations."""

from __future__ import annotations

import json

import pytest
import torch

from mmrft.config import load_config
from mmrft.data.schema import Sample
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.errors import ConfigError
from mmrft.models.tiny import make_tiny_model
from mmrft.train.rl import train_rl
from mmrft.train.samplers import SAMPLERS, DifficultyCurriculum, PassRateSampler, PromptSampler, build_sampler


class FixedOrderSampler(PromptSampler):
    """A user's sampler: cycles through the indices in a fixed order and records what it is told."""

    log: list = []

    def __init__(self, samples, batch_size, generator, start: int = 0):
        super().__init__(samples, batch_size, generator)
        self.next_index = start
        FixedOrderSampler.log = []

    def __next__(self):
        batch = [(self.next_index + k) % self.n for k in range(self.batch_size)]
        self.next_index = (self.next_index + self.batch_size) % self.n
        FixedOrderSampler.log.append(("draw", batch))
        return batch

    def observe(self, indices, pass_rates):
        FixedOrderSampler.log.append(("observe", list(indices), list(pass_rates)))

    def metrics(self):
        return {"sampler/next_index": float(self.next_index)}

    def state_dict(self):
        return {"n": self.n, "next_index": self.next_index}

    def load_state_dict(self, state):
        self.next_index = state["next_index"]


def test_a_user_sampler_draws_the_prompts_and_hears_their_pass_rates(tmp_path):
    model = make_tiny_model(tmp_path / "model", corpus=tokenizer_corpus(), seed=0)
    data = write_dataset("count", 10, tmp_path / "data", seed=2)
    cfg = load_config(None, [f"model.path={model}", f"data.train={data}", f"trainer.output_dir={tmp_path / 'run'}",
                             f"data.sampler={__name__}:FixedOrderSampler", "data.sampler_options={start: 3}",
                             "trainer.steps=2", "trainer.checkpoint_every=1", "trainer.progress=false",
                             "rollout.prompts_per_step=4", "rollout.group_size=2", "rollout.max_new_tokens=4",
                             "rewards.workers=0", "rewards.weights={exact: 1.0}"])
    train_rl(cfg)
    log = FixedOrderSampler.log
    assert [e[0] for e in log] == ["draw", "observe", "draw", "observe"]
    assert log[0][1] == [3, 4, 5, 6] and log[2][1] == [7, 8, 9, 0]
    assert log[1][1] == log[0][1] and log[3][1] == log[2][1]  # told about exactly the prompts it drew
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for (_, _, rates), row in zip([log[1], log[3]], [r for r in rows if r.get("phase") == "train"]):
        assert all(p in (0.0, 0.5, 1.0) for p in rates)  # 2 completions a prompt
        assert sum(rates) / len(rates) == pytest.approx(row["accuracy"])
    assert [r["sampler/next_index"] for r in rows if r.get("phase") == "train"] == [7.0, 1.0]  # its own metrics
    state = json.loads((tmp_path / "run" / "checkpoint-000002" / "state.json").read_text())
    assert state["sampler"] == {"n": 10, "next_index": 1}


def samples_at(levels: list[int]) -> list[Sample]:
    return [Sample(id=str(i), prompt="q", answer="1", metadata={"difficulty": d}) for i, d in enumerate(levels)]


def test_difficulty_curriculum_moves_up_when_the_level_is_learned():
    gen = torch.Generator().manual_seed(0)
    s = DifficultyCurriculum(samples_at([0, 0, 1, 1, 2, 2]), 2, gen, advance_at=0.6, min_prompts=4, ema=0.5)
    assert s.level == 0 and all(set(next(s)) <= {0, 1} for _ in range(20))
    s.observe([0, 1], [1.0, 0.0])  # 2 of the 4 prompts needed; rate: 1.0 then 0.5
    s.observe([2], [1.0])  # a level-1 prompt: not counted at level 0
    assert s.level == 0 and s.seen == 2 and s.rate == pytest.approx(0.5)
    s.observe([0, 1], [1.0, 1.0])  # rate 0.75, then 0.875 >= 0.6 after 4 prompts
    assert s.level == 1 and all(set(next(s)) <= {0, 1, 2, 3} for _ in range(20))
    assert s.metrics() == {"sampler/level": 1.0, "sampler/level_pass_rate": 0.0}  # a fresh rate at the new level
    state = s.state_dict()
    again = DifficultyCurriculum(samples_at([0, 0, 1, 1, 2, 2]), 2, gen, advance_at=0.6, min_prompts=4, ema=0.5)
    again.load_state_dict(json.loads(json.dumps(state)))
    assert again.level == 1
    with pytest.raises(ConfigError, match=r"metadata.difficulty"):
        DifficultyCurriculum([Sample(id="a", prompt="q", answer="1")], 1, gen)


def test_pass_rate_sampler_prefers_prompts_it_can_learn_from():
    gen = torch.Generator().manual_seed(0)
    s = PassRateSampler(samples_at([0] * 6), 3, gen, low=0.2, high=0.8, outside_weight=0.0)
    s.observe([0, 1, 2, 3], [0.0, 1.0, 0.5, 0.25])  # 0 too hard, 1 too easy; 2, 3 learnable; 4, 5 unseen
    assert s.weights().tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert s.metrics() == {"sampler/measured": pytest.approx(4 / 6), "sampler/outside": 0.5}
    for _ in range(30):
        batch = next(s)
        assert len(set(batch)) == 3 and set(batch) <= {2, 3, 4, 5}
    soft = PassRateSampler(samples_at([0] * 4), 2, gen, outside_weight=0.1)
    soft.observe([0], [1.0])
    assert soft.weights().tolist() == pytest.approx([0.1, 1.0, 1.0, 1.0])
    restored = PassRateSampler(samples_at([0] * 6), 3, gen, low=0.2, high=0.8, outside_weight=0.0)
    restored.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert restored.rates == s.rates


def test_building_samplers_and_errors():
    gen = torch.Generator()
    assert {"uniform", "difficulty", "pass_rate"} <= set(SAMPLERS)
    assert isinstance(build_sampler("uniform", {}, samples_at([0, 1]), 1, gen), PromptSampler)
    with pytest.raises(ConfigError, match=r"data.sampler: .*nope"):
        build_sampler("nope", {}, samples_at([0]), 1, gen)
    with pytest.raises(ConfigError, match=r"data.sampler_options for 'pass_rate'.*bogus"):
        build_sampler("pass_rate", {"bogus": 1}, samples_at([0]), 1, gen)
    with pytest.raises(ConfigError, match=r"low <= high"):
        build_sampler("pass_rate", {"low": 0.9, "high": 0.1}, samples_at([0]), 1, gen)
