"""The drawers environment end to end: a scripted "model" reads the question, opens the two drawers it asks about,
counts the balls in the returned pictures and answers; the answer it derives equals the generator's gold."""

import json
import re

import pytest
from PIL import Image

from mmrft.tools import Environment, ToolCall, ToolContext, make_environment, run_tool_call
from mmrft.tools.drawers import DrawersEnvironment, count_balls, generate_drawers, render_drawer

QUESTION_RE = re.compile(r"How many (\w+) balls are in drawers (\w) and (\w) together\?")


def open_call(label):
    return f'<tool_call>\n{{"name": "open_drawer", "arguments": {{"label": "{label}"}}}}\n</tool_call>'


def scripted_model(sample, env, ctx):
    """Plays one trajectory as a model would, using only the prompt and what the environment returns."""
    colour, first, second = QUESTION_RE.search(sample["prompt"]).groups()
    obs = env.reset(sample, ctx)
    counts = []
    for label in (first, second):
        obs = env.step(f"<think>I need to look inside drawer {label}.</think>\n" + open_call(label))
        assert not obs.done and obs.info["errors"] == [], obs.text
        [picture] = obs.images
        counts.append(count_balls(picture, colour))
    answer = sum(counts)
    obs = env.step(f"<think>{counts[0]} + {counts[1]} = {answer}</think><answer>{answer}</answer>")
    return answer, obs


@pytest.mark.parametrize("seed", [0, 1])
def test_a_scripted_model_opens_two_drawers_and_answers(seed):
    for sample in generate_drawers(6, seed=seed):
        env = make_environment("drawers")
        ctx = ToolContext(images=list(sample["images"]))
        answer, final = scripted_model(sample, env, ctx)
        assert str(answer) == sample["answer"]
        assert answer == sum(sample["metadata"]["counts"].values())
        assert final.done and final.reward == 1.0
        asked = sample["metadata"]["asked"]
        assert final.info["opened"] == {asked[0]: 1, asked[1]: 2}
        assert len(ctx.returned) == 2


def test_a_wrong_answer_earns_nothing():
    sample = generate_drawers(1, seed=3)[0]
    env = DrawersEnvironment()
    env.reset(sample, ToolContext(images=list(sample["images"])))
    wrong = int(sample["answer"]) + 1
    obs = env.step(f"<answer>{wrong}</answer>")
    assert obs.done and obs.reward == 0.0 and obs.info["opened"] == {}


def test_drawers_stay_open_and_errors_are_observations():
    sample = generate_drawers(1, seed=0)[0]
    labels = sample["metadata"]["labels"]
    env = DrawersEnvironment()
    ctx = ToolContext(images=list(sample["images"]))
    env.reset(sample, ctx)
    obs = env.step(open_call("drawer " + labels[0].lower()))  # "drawer a" -> A
    assert obs.text == f"<tool_response>\nOpened drawer {labels[0]}; this is image 1.\n</tool_response>"
    obs = env.step(open_call(labels[0]))
    assert obs.images == [] and f"Drawer {labels[0]} is already open: it is image 1." in obs.text
    obs = env.step(open_call("Z"))
    assert obs.info["errors"] == ["bad_arguments"]
    assert f"there is no drawer 'Z'; the drawers are {', '.join(labels)}" in obs.text
    obs = env.step(open_call(labels[1]) + open_call(labels[2]))  # one opening per turn
    assert [c["error"] for c in obs.info["calls"]] == [None, "too_many_calls"]
    assert obs.info["opened"] == {labels[0]: 1, labels[1]: 2}
    assert len(ctx.returned) == 2
    obs = env.step('<tool_call>{"name": "open_drawer", "arguments": {"label": 3}}</tool_call>')
    assert obs.info["errors"] == ["bad_arguments"]


def test_the_environment_class_declares_its_tool_schemas():
    from mmrft.tools import ENVIRONMENTS, tool_schemas

    assert ENVIRONMENTS["drawers"].tool_schemas() == tool_schemas(["open_drawer"])
    assert DrawersEnvironment().schemas() == tool_schemas(["open_drawer"])


def test_the_tool_without_a_cabinet():
    out = run_tool_call(ToolCall("open_drawer", {"label": "A"}), ToolContext(sample={"prompt": "x"}))
    assert (out.error, out.text) == ("tool_error", "Error: open_drawer: there is no cabinet in this question")


def test_items_are_deterministic_and_the_gold_comes_from_the_pictures():
    a, b = generate_drawers(4, seed=7), generate_drawers(4, seed=7)
    other = generate_drawers(4, seed=8)
    assert [s["prompt"] for s in a] != [s["prompt"] for s in other] or \
        [s["metadata"]["drawers"] for s in a] != [s["metadata"]["drawers"] for s in other]
    for x, y in zip(a, b):
        assert x["prompt"] == y["prompt"] and x["answer"] == y["answer"] and x["metadata"] == y["metadata"]
        assert x["images"][0].tobytes() == y["images"][0].tobytes()
        md = x["metadata"]
        drawn = sum(count_balls(render_drawer(label, md["drawers"][label]), md["colour"]) for label in md["asked"])
        recorded = sum(ball["colour"] == md["colour"] for label in md["asked"] for ball in md["drawers"][label])
        assert str(drawn) == str(recorded) == x["answer"]
        assert 3 <= len(md["labels"]) <= 5 and len(md["asked"]) == 2 and x["reward"] == "count"


def test_written_to_a_directory(tmp_path):
    rows = generate_drawers(3, seed=0, out_dir=tmp_path)
    lines = (tmp_path / "data.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    for row in rows:
        [rel] = row["images"]
        with Image.open(tmp_path / rel) as img:
            assert img.size == tuple(row["metadata"]["image_size"])
    # a trajectory from the written rows, images loaded from disk
    row = rows[0]
    env = make_environment("drawers")
    assert isinstance(env, Environment)
    ctx = ToolContext(images=[Image.open(tmp_path / row["images"][0]).convert("RGB")])
    answer, final = scripted_model(row, env, ctx)
    assert str(answer) == row["answer"] and final.reward == 1.0
