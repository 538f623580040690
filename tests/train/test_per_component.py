"""Per-component advantage estimators (GDPO): the scorer's reward columns, the trainer's call, a run."""

import json

import pytest
import torch

from mmrft.algorithms import gdpo, grpo
from mmrft.config import load_config
from mmrft.data.schema import Sample
from mmrft.rewards.scoring import Scorer, Scores
from mmrft.train.learn import TrainBatch, component_weights, estimate_advantages
from mmrft.train.rl import train_rl


def test_component_matrix_puts_each_rows_own_task_reward_in_the_task_column():
    scorer = Scorer({"task": 1.0, "format": 0.5})
    samples = [Sample(id="a", prompt="p", answer="1", reward="count"),
               Sample(id="b", prompt="p", answer="A", reward="choice")]
    nan = float("nan")
    scores = Scores(torch.zeros(2), torch.zeros(2),
                    {"count": [1.0, nan], "choice": [nan, 0.0], "format": [1.0, nan]})  # format failed on row 1
    matrix, weights = scorer.component_matrix(scores, samples)
    assert matrix.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert weights == [1.0, 0.5]


def test_gdpo_is_called_with_the_columns_not_their_sum():
    cfg = load_config(None, ["algorithm.advantage=gdpo",
                             "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 2.0}"])
    assert component_weights(cfg) == [1.0, 2.0]
    # two groups of two; the first reward decides group 0, the second group 1
    comps = torch.tensor([[1.0, 0.2], [0.0, 0.2], [0.0, 0.5], [0.0, 0.1]])
    weights = [1.0, 2.0]
    batch = TrainBatch(seqs=None, mask=torch.ones(4, 3), rewards=comps @ torch.tensor(weights),
                       group_ids=torch.tensor([0, 0, 1, 1]), truncated=torch.zeros(4, dtype=torch.bool),
                       reward_components=comps, component_weights=weights)
    advantages, returns = estimate_advantages(cfg, batch)
    assert returns is None
    torch.testing.assert_close(advantages, gdpo(comps, batch.group_ids, weights=weights))
    # each column is normalised within its groups first (+-1/sqrt(2) where it varies), then weighted: group 0 varies
    # in the weight-1 column, group 1 in the weight-2 one, so row 2 gets twice row 0's advantage; GRPO on the
    # weighted sums (1.4, 0.4 | 1.0, 0.2) normalises each group to +-1/sqrt(2) and cannot tell them apart
    assert float(advantages[2]) == pytest.approx(2 * float(advantages[0]), rel=1e-3)  # eps 1e-4 in the stds
    summed = grpo(batch.rewards, batch.group_ids)
    assert float(summed[2]) == pytest.approx(float(summed[0]), rel=1e-4)
    assert not torch.allclose(advantages, summed)


def test_a_gdpo_run(tmp_path, tiny_model_dir, count_data):
    cfg = load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={count_data['train']}", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.steps=2", "trainer.progress=false", "rollout.group_size=4", "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=8", "trainer.lr=1e-3", "algorithm.advantage=gdpo",
        "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}"])
    train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["phase"] == "train"]
    assert len(train) == 2
    for r in train:  # batch-whitened: mean 0, std 1 over the 8 completions
        assert r["advantage/mean"] == pytest.approx(0.0, abs=1e-5)
        assert r["advantage/std"] == pytest.approx(1.0, abs=1e-3)


def test_gdpo_with_the_kl_in_the_reward_is_refused(tiny_model_dir, count_data):
    from mmrft.errors import ConfigError
    from mmrft.train.run import check_algorithm

    cfg = load_config(None, [f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
                             "algorithm.advantage=gdpo", "algorithm.kl_coef=0.1", "algorithm.kl_in_reward=true"])
    with pytest.raises(ConfigError, match="per-component"):
        check_algorithm(cfg)
