"""A run's data read lazily (`data.lazy`): chosen by size, checked as configured, fitted to the model as samples are
read, and trained on exactly as the same data loaded into a list."""

import json
from types import SimpleNamespace

import pytest

import mmrft.train.data as train_data
from mmrft.config import load_config
from mmrft.data.table import SampleTable
from mmrft.errors import ConfigError, DataError
from mmrft.train.data import fit_to_model, load_data


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(tmp_path, path, *overrides):
    return load_config(None, [f"data.train={path}", f"data.cache_dir={tmp_path / 'cache'}", *overrides])


def test_lazy_is_chosen_by_size_and_skips_the_media_check_unless_asked(tmp_path, monkeypatch):
    path = _write(tmp_path / "data.jsonl", [{"id": "a", "prompt": "p", "answer": "1", "images": ["missing.png"]}])
    with pytest.raises(DataError, match=r"data.jsonl:1: field 'images': item 0: image not found"):
        load_data(_cfg(tmp_path, path))  # small: a list, every image opened, as before
    monkeypatch.setattr(train_data, "LAZY_AUTO_BYTES", 10)
    train, _ = load_data(_cfg(tmp_path, path))  # big: lazy, media opened when a batch needs them
    assert isinstance(train, SampleTable) and train[0].images == [str(tmp_path / "missing.png")]
    with pytest.raises(DataError, match=r"data.jsonl:1: field 'images': item 0: image not found"):
        load_data(_cfg(tmp_path, path, "data.validate_media=true"))
    train, _ = load_data(_cfg(tmp_path, path, "data.lazy=false", "data.validate_media=false"))
    assert isinstance(train, list) and len(train) == 1


def test_fit_to_model_reads_a_lazy_table_without_walking_it(tmp_path, monkeypatch):
    box = {"id": "g", "prompt": "Where?", "answer": [10, 20, 50, 60], "reward": "iou", "images": ["x.png"],
           "metadata": {"image_size": [100, 200]}}
    path = _write(tmp_path / "data.jsonl", [box, {"id": "v", "prompt": "Which way?", "answer": "A",
                                                  "videos": ["clip.mp4"]}])
    cfg = _cfg(tmp_path, path, "data.lazy=true")
    train, _ = load_data(cfg)
    assert train.modalities == {"image", "video"}
    monkeypatch.setattr(SampleTable, "__iter__", lambda self: pytest.fail("walked every sample"))
    audio_model = SimpleNamespace(config=SimpleNamespace(model_type="qwen2_audio"))
    with pytest.raises(ConfigError, match="the samples carry image, video but model.path is a qwen2_audio model"):
        fit_to_model(train, cfg, audio_model, processor=None)
    qwen2 = SimpleNamespace(config=SimpleNamespace(model_type="qwen2_vl"))  # boxes on a 0-1000 grid
    fitted = fit_to_model(train, cfg, qwen2, processor=None)
    assert isinstance(fitted, SampleTable) and len(fitted) == 2
    assert fitted[0].answer == [100, 100, 500, 300] and fitted[0].metadata["box_format"] == "norm1000"
    assert train[0].answer == [10, 20, 50, 60] and fitted[1] == train[1]  # the table itself is not rewritten


def test_rl_on_a_lazy_table_trains_as_on_a_list(tmp_path, tiny_model_dir, count_data):
    from mmrft.train.rl import train_rl

    def run(name, lazy):
        cfg = load_config(None, [
            f"model.path={tiny_model_dir}", f"data.train={count_data['train']}", f"data.lazy={lazy}",
            f"data.cache_dir={tmp_path / 'cache'}", "data.sampler=pass_rate",  # observes drawn prompts by index
            f"trainer.output_dir={tmp_path / name}", "trainer.steps=2", "trainer.progress=false",
            "trainer.eval_every=0", "tracking.tensorboard=false", "rollout.group_size=2", "rollout.prompts_per_step=3",
            "rollout.max_new_tokens=4"])
        train_rl(cfg)
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: r[k] for k in ("reward/mean", "actor/loss", "sampler/measured")} for r in rows
                if r["phase"] == "train"]

    lazy, eager = run("lazy", True), run("eager", False)
    assert len(lazy) == 2 and lazy == eager
    assert lazy[1]["sampler/measured"] > 0  # the sampler heard the drawn prompts' pass rates
