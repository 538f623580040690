"""ToolEnvironment over several turns (image indices keep counting), its limits and its robustness to model text;
the environment registry."""

import random

import pytest
from PIL import Image

from mmrft.tools import (ENVIRONMENTS, Environment, Observation, ToolContext, ToolEnvironment, make_environment,
                         observation_content, register_environment)


def tool_call(name, **arguments):
    import json

    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def picture(w=200, h=100):
    img = Image.new("RGB", (w, h), (255, 0, 0))
    img.paste((0, 0, 255), (w // 2, 0, w, h))
    return img


@pytest.fixture
def env_ctx():
    env = ToolEnvironment(tools=["zoom_in", "rotate"], timeout_s=5, max_calls_per_turn=2)
    ctx = ToolContext(images=[picture()])
    sample = {"id": "s1", "prompt": "What colour is the right half?", "answer": "blue"}
    first = env.reset(sample, ctx)
    assert first == Observation(info={"calls": [], "errors": []})
    assert ctx.sample is sample
    return env, ctx


def test_a_trajectory_keeps_counting_image_indices(env_ctx):
    env, ctx = env_ctx
    # turn 1: one zoom -> image 1
    obs = env.step("<think>look closer</think>" + tool_call("zoom_in", bbox_2d=[100, 0, 200, 100]))
    assert not obs.done and obs.reward is None
    assert obs.text == ("<tool_response>\nZoomed in on image 0 at [100, 0, 200, 100] (pixels); this is image 1.\n"
                        "</tool_response>")
    assert [im.size for im in obs.images] == [(100, 100)]
    assert obs.info == {"calls": [{"name": "zoom_in", "arguments": {"bbox_2d": [100, 0, 200, 100]}, "error": None,
                                   "images": 1, "text": obs.text.split("\n")[1],
                                   "info": {"image_index": 0, "pixel_box": [100, 0, 200, 100]}}], "errors": []}
    assert len(ctx.returned) == 1 and ctx.returned[0] is obs.images[0]
    # turn 2: two calls on the returned image -> images 2 and 3
    obs = env.step(tool_call("rotate", angle=90, image_index=1) + "\n"
                   + tool_call("zoom_in", bbox_2d=[0, 0, 50, 50], image_index=1))
    assert obs.text.count("<tool_response>") == 2
    assert "Rotated image 1 by 90 degrees counter-clockwise; this is image 2." in obs.text
    assert "Zoomed in on image 1 at [0, 0, 50, 50] (pixels); this is image 3." in obs.text
    assert [im.size for im in obs.images] == [(100, 100), (50, 50)]
    assert len(ctx.returned) == 3 and ctx.returned[1:] == obs.images
    assert ctx.image(3).getpixel((25, 25)) == (0, 0, 255)
    # turn 3: the new index is usable
    obs = env.step(tool_call("zoom_in", bbox_2d=[0, 0, 30, 30], image_index=3))
    assert obs.info["errors"] == [] and "this is image 4." in obs.text
    # turn 4: the answer
    obs = env.step("<answer>blue</answer>")
    assert obs.done and obs.text == "" and obs.images == [] and obs.info == {"calls": [], "errors": []}
    assert ctx.num_images == 5


def test_bad_calls_are_observations_not_exceptions(env_ctx):
    env, ctx = env_ctx
    obs = env.step("<tool_call>{\"name\": \"zoom_in\", \"arguments\": {\"bbox_2d\": [1, 2]}</tool_call>")
    assert not obs.done and obs.info["errors"] == ["parse_error"]
    assert obs.info["calls"][0]["name"] is None
    assert "Error: could not parse the tool call" in obs.text
    obs = env.step(tool_call("calculator", expression="1+1"))  # registered, but not one of this environment's
    assert obs.info["errors"] == ["unknown_tool"] and "available tools: zoom_in, rotate" in obs.text
    obs = env.step(tool_call("zoom_in", bbox_2d=[1, 2]))
    assert obs.info["errors"] == ["bad_arguments"]
    obs = env.step(tool_call("zoom_in", bbox_2d=[0, 0, 10, 10], image_index=5))
    assert obs.info["errors"] == ["bad_arguments"] and "image_index 5 does not exist" in obs.text
    assert ctx.returned == []  # nothing returned, nothing counted


def test_calls_beyond_the_turn_limit_are_answered_with_an_error(env_ctx):
    env, ctx = env_ctx
    box = {"bbox_2d": [0, 0, 50, 50]}
    obs = env.step(tool_call("zoom_in", **box) + tool_call("zoom_in", **box) + tool_call("zoom_in", **box))
    assert obs.info["errors"] == ["too_many_calls"]
    assert [c["error"] for c in obs.info["calls"]] == [None, None, "too_many_calls"]
    assert len(obs.images) == 2 and len(ctx.returned) == 2
    assert "too many tool calls in one turn (at most 2); this call was not run." in obs.text


def test_never_raises_on_random_model_text(env_ctx):
    env, _ = env_ctx
    rng = random.Random(0)
    pieces = ["<tool_call>", "</tool_call>", "{", "}", '"name"', ":", '"zoom_in"', '"arguments"', "[", "]", "1",
              "-1e999", "null", "true", ",", '"bbox_2d"', "\n", "é", "\x00", '"image_index"', "NaN", '""']
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        obs = env.step(text)
        assert isinstance(obs, Observation)


def test_step_before_reset_is_a_programming_error():
    with pytest.raises(RuntimeError, match="before reset"):
        ToolEnvironment(tools=["zoom_in"]).step("hi")


def test_registry_and_protocol():
    assert {"tools", "drawers"} <= set(ENVIRONMENTS)
    env = make_environment("tools", tools=["calculator"], timeout_s=1.0)
    assert isinstance(env, ToolEnvironment) and isinstance(env, Environment)
    env.reset({"prompt": "2+2?"}, ToolContext())
    obs = env.step(tool_call("calculator", expression="2+2"))
    assert obs.text == "<tool_response>\n2+2 = 4\n</tool_response>"
    assert [s["function"]["name"] for s in env.schemas()] == ["calculator"]
    with pytest.raises(ValueError, match="max_calls_per_turn"):
        ToolEnvironment(tools=["zoom_in"], max_calls_per_turn=0)


def test_a_user_environment_by_module_name():
    name = "tests.tools.user_tools:EchoEnvironment"
    env = make_environment(name, prefix="> ")
    assert isinstance(env, Environment)
    assert env.reset({"prompt": "hi"}, ToolContext()).text == "> hi"
    assert env.step("bye").done


def test_register_environment():
    @register_environment("test_env_tmp")
    class Tmp(ToolEnvironment):
        pass

    try:
        assert ENVIRONMENTS["test_env_tmp"] is Tmp
        with pytest.raises(TypeError):
            register_environment("test_env_bad")(42)
    finally:
        ENVIRONMENTS.unregister("test_env_tmp")


def test_observation_content_puts_media_first():
    img = picture()
    assert observation_content(Observation(text="t", images=[img])) == [{"type": "image", "image": img},
                                                                         {"type": "text", "text": "t"}]
    assert observation_content(Observation()) == []
