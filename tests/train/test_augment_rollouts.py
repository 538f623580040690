"""Rollout-time augmentation (NoisyRollout): each group joins completions sampled on the clean prompt and on a
perturbed copy of its image, the update is computed on the clean prompt, the strength anneals, and a resumed run
perturbs the same images. A user perturbation (`module:function`) records what it was given."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmrft.config import load_config
from mmrft.data.collate import PromptBatch
from mmrft.data.media import load_image
from mmrft.data.schema import Sample
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.errors import ConfigError
from mmrft.models.tiny import make_tiny_model
from mmrft.rollout.engine import Rollout, interleave_groups
from mmrft.train.augment_rollouts import check_augment, perturbed_samples
from mmrft.train.rl import train_rl

CALLS: list[tuple[float, tuple[int, int]]] = []


def record(image, level, generator):
    """A user perturbation: inverts the image, and records the strength and size it was given."""
    CALLS.append((level, image.size))
    return Image.eval(image, lambda v: 255 - v)


def rollout(prompts: list[str], n: int, texts: list[str], width: int) -> Rollout:
    b = len(texts)
    ids = torch.arange(b * width).view(b, width)
    batch = PromptBatch.__new__(PromptBatch)
    batch.samples = [Sample(id=p, prompt=p, answer="1") for p in prompts]
    return Rollout(batch, n, ids, torch.ones(b, width), torch.zeros(b, dtype=torch.bool), texts)


def test_interleave_puts_each_groups_rows_together():
    clean = rollout(["p", "q"], 2, ["p0", "p1", "q0", "q1"], 3)
    noisy = rollout(["p", "q"], 1, ["p~", "q~"], 5)
    out = interleave_groups(clean, noisy, pad_id=-1)
    assert out.n == 3 and out.texts == ["p0", "p1", "p~", "q0", "q1", "q~"]
    assert out.completion_ids.shape == (6, 5) and out.completion_ids[0].tolist() == [0, 1, 2, -1, -1]
    assert out.completion_ids[2].tolist() == noisy.completion_ids[0].tolist()
    assert out.completion_mask[0].tolist() == [1, 1, 1, 0, 0] and out.prompts is clean.prompts
    assert out.group_ids.tolist() == [0, 0, 0, 1, 1, 1]


def test_perturbed_samples_are_seeded_and_leave_the_original(tmp_path):
    data = write_dataset("count", 2, tmp_path / "d", seed=0)
    from mmrft.data.sources import load_samples

    chunk = load_samples(data)
    a = perturbed_samples(chunk, "gaussian", {"noise_step": 300}, 1.0, seed=0, step=3)
    b = perturbed_samples(chunk, "gaussian", {"noise_step": 300}, 1.0, seed=0, step=3)
    c = perturbed_samples(chunk, "gaussian", {"noise_step": 300}, 1.0, seed=0, step=4)
    pix = [np.asarray(load_image(x.images[0])) for x in (a[0], b[0], c[0])]
    assert np.array_equal(pix[0], pix[1]) and not np.array_equal(pix[0], pix[2])
    assert not np.array_equal(pix[0], np.asarray(load_image(chunk[0].images[0])))
    assert isinstance(chunk[0].images[0], str) and a[0].id == chunk[0].id and a[0].answer == chunk[0].answer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment")
    return (make_tiny_model(root / "model", corpus=tokenizer_corpus(), seed=0),
            write_dataset("count", 8, root / "data", seed=2))


def test_a_run_samples_part_of_each_group_on_perturbed_images(setup, tmp_path):
    model, data = setup
    CALLS.clear()
    cfg = load_config(None, [f"model.path={model}", f"data.train={data}", f"trainer.output_dir={tmp_path / 'run'}",
                             "trainer.steps=3", "trainer.progress=false", "rollout.prompts_per_step=2",
                             "rollout.group_size=4", "rollout.max_new_tokens=4", "rewards.workers=0",
                             f"rollout.augment={__name__}:record", "rollout.augment_share=0.25",
                             "rollout.augment_anneal=linear", "tracking.rollouts_every=1"])
    train_rl(cfg)
    # 2 prompts a step, one image each, perturbed once per step at strength 1 - step / steps
    assert [round(level, 4) for level, _ in CALLS] == [0.6667] * 2 + [0.3333] * 2 + [0.0] * 2
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("phase") == "train"]
    assert [round(r["augment/level"], 4) for r in train] == [0.6667, 0.3333, 0.0]
    assert all(r["filter/groups_drawn"] == 2 for r in train)  # 2 groups of 3 clean + 1 perturbed completions


def test_settings_are_checked():
    def cfg(*o):
        return load_config(None, ["rollout.group_size=4", *o])

    assert check_augment(cfg()) == 0 and check_augment(cfg("rollout.augment=gaussian")) == 2
    with pytest.raises(ConfigError, match="must leave at least one on each side"):
        check_augment(cfg("rollout.augment=gaussian", "rollout.augment_share=0.05"))
    with pytest.raises(ConfigError, match="rollout.augment: .*nope"):
        check_augment(cfg("rollout.augment=nope"))
    with pytest.raises(ConfigError, match="single-turn"):
        check_augment(cfg("rollout.augment=blur", "rollout.tools=[zoom_in]"))
