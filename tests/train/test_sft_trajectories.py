"""SFT cold start on supervised tool-use trajectories: the schema, its errors, and training on assistant turns only,
with the tool turns (and their images) as context."""

import json

import pytest
import torch
from PIL import Image

from mmrft.data.sources import load_samples
from mmrft.errors import DataError

CALL = '<think>look closer</think><tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 500, 500]}}</tool_call>'


def _write(tmp_path, count_data, rows=None):
    """Trajectory rows over the count task's images: zoom on the top-left quarter, then the answer."""
    src = load_samples(count_data["train"])[:4]
    (tmp_path / "crops").mkdir(exist_ok=True)
    out = []
    for s in src:
        crop = Image.open(s.images[0]).crop((0, 0, 56, 56))
        crop.save(tmp_path / "crops" / f"{s.id}.png")
        row = s.to_row(tmp_path)
        row["trajectory"] = [
            {"role": "assistant", "content": CALL},
            {"role": "tool", "content": "Zoomed in on image 0; this is image 1.", "images": [f"crops/{s.id}.png"]},
            {"role": "assistant", "content": f"<think>counted</think><answer>{s.answer}</answer>"},
        ]
        out.append(row)
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (rows or out)))
    return path, out


def test_trajectory_rows_load_and_bad_ones_name_the_line(tmp_path, count_data):
    path, rows = _write(tmp_path, count_data)
    samples = load_samples(path)
    assert [t["role"] for t in samples[0].trajectory] == ["assistant", "tool", "assistant"]
    assert samples[0].trajectory[1]["images"][0] == str(tmp_path / "crops" / f"{samples[0].id}.png")
    bad = [dict(rows[0]), dict(rows[1], trajectory=[{"role": "assistant", "content": CALL},
                                                   {"role": "tool", "content": "x", "images": ["crops/none.png"]},
                                                   {"role": "assistant", "content": "<answer>1</answer>"}])]
    path.write_text("".join(json.dumps(r) + "\n" for r in bad))
    with pytest.raises(DataError, match=r"data.jsonl:2: field 'trajectory': turn 1 images: item 0: .*none.png"):
        load_samples(path)
    for trajectory, message in [
        ([{"role": "tool", "content": "x"}], "turn 0: expected an assistant turn"),
        ([{"role": "assistant", "content": CALL}], None),
        ([{"role": "assistant", "content": CALL}, {"role": "tool", "content": "x"}], "the last turn must be an assistant"),
        ([{"role": "assistant", "content": ""}], "turn 0: key 'content': expected a non-empty string"),
        ([{"role": "assistant", "content": "a", "images": ["x.png"]}], "only tool turns return images"),
        ([{"role": "user", "content": "a"}], "key 'role': expected one of assistant, tool"),
        ("not a list", "field 'trajectory': expected a list of turns"),
    ]:
        path.write_text(json.dumps(dict(rows[0], trajectory=trajectory)) + "\n")
        if message is None:
            assert load_samples(path)[0].trajectory[0]["content"] == CALL
        else:
            with pytest.raises(DataError, match=f"data.jsonl:1: .*{message}"):
                load_samples(path)


def test_sft_learns_the_assistant_turns_of_trajectories(tmp_path, tiny_model_dir, count_data):
    from mmrft.config import ModelConfig, load_config
    from mmrft.models.load import load_policy
    from mmrft.train.sft import encode_answers, train_sft

    path, _ = _write(tmp_path, count_data)
    samples = load_samples(path)
    _, processor = load_policy(ModelConfig(path=str(tiny_model_dir)))
    ids, weights, mask, keys, media = encode_answers(processor, samples, "r1")
    tool = (mask - weights).bool()
    assert tool.any() and weights.bool().any()
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (ids[weights.bool()] != image_pad).all() and (ids[tool] == image_pad).any()  # images: tool turns only
    assert media is not None and all("pixel_values" in m for m in media)
    assert keys is not None and (keys["mm_token_type_ids"][tool] > 0).any()  # the image tokens are typed as such

    cfg = load_config(None, [f"model.path={tiny_model_dir}", f"data.train={path}", "rollout.tools=[zoom_in]",
                             f"trainer.output_dir={tmp_path / 'sft'}", "sft.steps=8", "sft.batch_size=4",
                             "sft.lr=3e-3", "sft.warmup_steps=0", "trainer.progress=false"])
    res = train_sft(cfg)
    rows = [json.loads(x) for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["sft/loss"] for r in rows if r["phase"] == "sft"]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert (tmp_path / "sft" / "final" / "model.safetensors").is_file() and res["checkpoint"]
