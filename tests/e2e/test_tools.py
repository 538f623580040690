"""Tool use end to end on the tiny model: SFT on tool-using trajectories (a built-in tool and a user tool given as
`module:function`), then GRPO with `rollout.tools`, whose rollouts call both tools, read the images they return, and
whose dump and viewer show the trajectories."""

import json

import pytest

from tests.e2e.tool_data import USER_TOOL, write_tool_sft_data

pytestmark = pytest.mark.slow


def test_sft_then_grpo_with_tools(tmp_path, tiny_model_dir):
    from transformers import AutoProcessor

    from mmrft.config import load_config
    from mmrft.data.synthetic import write_dataset
    from mmrft.report.viewer import write_viewer
    from mmrft.train.rl import train_rl
    from mmrft.train.sft import train_sft

    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    size = processor.image_processor.size
    labelled = write_dataset("count", 64, tmp_path / "labelled", seed=1)
    sft_data = write_tool_sft_data(labelled, tmp_path / "sft-data", "norm1000", size["longest_edge"],
                                   size["shortest_edge"])
    rl_data = write_dataset("count", 32, tmp_path / "rl", seed=2)
    tools = f"rollout.tools=[zoom_in, '{USER_TOOL}']"
    sft = train_sft(load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={sft_data}", tools, f"trainer.output_dir={tmp_path / 'sft'}",
        "sft.steps=200", "sft.batch_size=16", "sft.lr=3e-3", "trainer.progress=false"]))
    res = train_rl(load_config(None, [
        f"model.path={sft['checkpoint']}", f"data.train={rl_data}", tools, f"trainer.output_dir={tmp_path / 'rl'}",
        "trainer.steps=3", "rollout.group_size=4", "rollout.prompts_per_step=4", "rollout.max_new_tokens=160",
        "rollout.max_total_tokens=600", "tracking.rollouts_every=1", "trainer.progress=false",
        "rewards.weights={task: 1.0, tool_bonus: 0.5, tool_failures: 0.5}"]))
    assert res["checkpoint"]
    rows = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["phase"] == "train"]
    calls = {name: sum(r.get(f"trajectory/calls/{name}", 0.0) for r in train) for name in ("zoom_in", USER_TOOL)}
    assert all(v > 0 for v in calls.values()), calls  # the SFT policy calls both tools in its own rollouts
    assert sum(r["trajectory/images"] for r in train) > 0
    dump = [json.loads(x) for x in (tmp_path / "rl" / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
    assert any(any(t.get("images") for t in d.get("turns", [])) for d in dump)
    page = write_viewer(tmp_path / "rl").read_text()
    assert "zoom_in" in page and '"turns"' in page
