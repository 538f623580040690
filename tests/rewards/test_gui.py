import time

import pytest

from mmrft.rewards import get_reward, gui_reward
from mmrft.rewards.gui import parse_action

from tests.rewards.test_extract import ADVERSARIAL
from tests.rewards.hang_guard import HANG_GUARD_S

CLICK = {"action": "click", "bbox": [100, 200, 300, 260]}  # a "Sign in" button
TYPE = {"action": "type", "text": "weather in Paris"}
SCROLL = {"action": "scroll", "direction": "down"}


def S(answer, **metadata):
    return {"id": "u", "answer": answer, "metadata": metadata}


GUI_ROWS = [
    # (gold, completion, metadata, expected)
    # --- click
    (CLICK, "click(150, 230)", {}, 1.0),
    (CLICK, "click(x=150, y=230)", {}, 1.0),
    (CLICK, "click(y=230, x=150)", {}, 1.0),
    (CLICK, "CLICK(150,230)", {}, 1.0),
    (CLICK, "tap(150, 230)", {}, 1.0),
    (CLICK, "click((150, 230))", {}, 1.0),
    (CLICK, "click([150.5, 230.2])", {}, 1.0),
    (CLICK, "<think>The Sign in button is near the top.</think><answer>click(150, 230)</answer>", {}, 1.0),
    (CLICK, "I will click on the 'Sign in' button.\nAction: click(150, 230)", {}, 1.0),
    (CLICK, "click(start_box='<|box_start|>(120,210),(180,250)<|box_end|>')", {}, 1.0),  # box centre
    (CLICK, "click([110, 205, 290, 255])", {}, 1.0),
    (CLICK, '{"action": "click", "coordinate": [150, 230]}', {}, 1.0),
    (CLICK, '```json\n{"action": "click", "coordinate": [150, 230]}\n```', {}, 1.0),
    (CLICK, "{'action': 'click', 'coordinate': (150, 230)}", {}, 1.0),
    (CLICK, '{"action_type": "click", "x": 150, "y": 230}', {}, 1.0),
    (CLICK, '{"action": "left_click", "point": "(150, 230)"}', {}, 1.0),
    (CLICK, "click(100, 200)", {}, 1.0),  # corner: edges count as inside
    (CLICK, "click(300, 260)", {}, 1.0),
    (CLICK, "click(301, 230)", {}, 0.0),
    (CLICK, "click(50, 50)", {}, 0.0),
    (CLICK, "click(150)", {}, 0.0),
    (CLICK, "click(x=150)", {}, 0.0),
    (CLICK, "click(150, 230", {}, 0.0),  # truncated
    (CLICK, "click on the Sign in button", {}, 0.0),
    (CLICK, "click(50, 50) ... no wait, click(150, 230)", {}, 1.0),  # the last action counts
    (CLICK, "click(150, 230) then click(50, 50)", {}, 0.0),
    (CLICK, "type(\"click(150, 230)\")", {}, 0.0),  # a quoted action is text
    (CLICK, "<think>maybe click(150, 230)</think><answer>scroll(down)</answer>", {}, 0.0),
    (CLICK, "<think>I should click(150, 230) but the output got cut", {}, 0.0),
    (CLICK, "click(250, 383)", {"box_format": "norm1000", "image_size": [600, 600]}, 1.0),  # -> (150, 229.8)
    (CLICK, "click(0.25, 0.383)", {"box_format": "norm1", "image_size": [600, 600]}, 1.0),
    (CLICK, "click(150, 230)", {"box_format": "norm1000", "image_size": [600, 600]}, 0.0),  # -> (90, 138)
    (CLICK, "click(1e999, 230)", {}, 0.0),
    (CLICK, "click(nan, nan)", {}, 0.0),
    (CLICK, "type('hello')", {}, 0.0),
    # --- type
    (TYPE, 'type("weather in Paris")', {}, 1.0),
    (TYPE, "type('Weather in Paris')", {}, 1.0),
    (TYPE, 'type(text="weather  in paris")', {}, 1.0),
    (TYPE, "type(content='weather in Paris\\n')", {}, 1.0),  # UI-TARS: trailing newline submits
    (TYPE, "<answer>type(text='weather in Paris')</answer>", {}, 1.0),
    (TYPE, 'I need to search. Action: input("weather in Paris")', {}, 1.0),
    (TYPE, '{"action": "type", "text": "weather in Paris"}', {}, 1.0),
    (TYPE, '{"action": "type", "content": "weather in Paris"}', {}, 1.0),
    (TYPE, 'type("weather in \\"Paris\\"")', {}, 0.0),  # quotes are part of the text
    (TYPE, 'type("weather in London")', {}, 0.0),
    (TYPE, 'type("weather in Paris, France")', {}, 0.0),
    (TYPE, "type(weather in Paris)", {}, 0.0),  # unquoted
    (TYPE, 'type("weather in Pa', {}, 0.0),  # truncated
    (TYPE, "click(150, 230)", {}, 0.0),
    (TYPE, "Type weather in Paris into the search box.", {}, 0.0),
    # --- scroll
    (SCROLL, "scroll(down)", {}, 1.0),
    (SCROLL, 'scroll("down")', {}, 1.0),
    (SCROLL, "scroll(direction='down')", {}, 1.0),
    (SCROLL, "scroll(start_box='(300,400)', direction='down')", {}, 1.0),
    (SCROLL, "Scroll(DOWN)", {}, 1.0),
    (SCROLL, '{"action": "scroll", "direction": "down"}', {}, 1.0),
    (SCROLL, "<think>The list continues below.</think><answer>scroll(down)</answer>", {}, 1.0),
    (SCROLL, "scroll(up)", {}, 0.0),
    (SCROLL, '{"action": "scroll", "direction": "up"}', {}, 0.0),
    (SCROLL, '{"action": "scroll", "direction": "sideways"}', {}, 0.0),
    (SCROLL, "scroll()", {}, 0.0),
    (SCROLL, "I need to scroll down to see more.", {}, 0.0),
    (SCROLL, "click(150, 230)", {}, 0.0),
    # --- nothing usable
    (CLICK, "", {}, 0.0),
    (CLICK, None, {}, 0.0),
    (CLICK, "<answer></answer>", {}, 0.0),
    (CLICK, '{"action": "drag", "coordinate": [150, 230]}', {}, 0.0),
    (CLICK, '{"coordinate": [150, 230]}', {}, 0.0),
]


@pytest.mark.parametrize("gold,completion,metadata,expected", GUI_ROWS)
def test_gui(gold, completion, metadata, expected):
    assert gui_reward(completion, S(gold, **metadata)) == expected


def test_gold_box_format_and_registration():
    gold = {"action": "click", "bbox": [0.1, 0.2, 0.3, 0.3]}
    md = {"answer_box_format": "norm1", "image_size": [1000, 1000]}
    assert gui_reward("click(150, 250)", S(gold, **md)) == 1.0
    assert get_reward("gui") is gui_reward


def test_parse_action():
    assert parse_action("click(1, 2)") == ("click", (1.0, 2.0))
    assert parse_action("type('a\\tb')") == ("type", "a\tb")
    assert parse_action("scroll(left)") == ("scroll", "left")
    assert parse_action("nothing here") is None
    assert parse_action(None) is None


@pytest.mark.parametrize(
    "gold",
    [
        "click(1, 2)",
        {"action": "drag"},
        {"action": "click"},
        {"action": "click", "bbox": [3, 4, 1, 2]},
        {"action": "type"},
        {"action": "type", "text": 5},
        {"action": "scroll", "direction": "sideways"},
        {"action": "scroll"},
    ],
)
def test_bad_gold_raises(gold):
    with pytest.raises(ValueError):
        gui_reward("click(1, 2)", S(gold))


@pytest.mark.parametrize("metadata", [{"box_format": "norm1000"}, {"box_format": "xy"}, {"image_size": [-1, 5]}])
def test_bad_metadata_raises(metadata):
    with pytest.raises(ValueError):
        gui_reward("click(1, 2)", S(CLICK, **metadata))


HOSTILE = {
    **ADVERSARIAL,
    "calls_50k": "click(" * 50_000,
    "quotes_50k": "type(\"" * 30_000,
    "objects_50k": '{"action": "click", "coordinate": [' * 20_000,
    "long_type": 'type("' + "a" * 100_000 + '")',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_completions(name):
    t0 = time.perf_counter()
    for gold in (CLICK, TYPE, SCROLL):
        assert gui_reward(HOSTILE[name], S(gold)) == 0.0
    assert time.perf_counter() - t0 < HANG_GUARD_S
