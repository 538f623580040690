"""parse_tool_calls on real-looking assistant turns: good calls, the accepted variations, and every kind of bad block
(an error entry, never an exception)."""

import pytest

from mmrft.tools import ToolCall, ToolCallError, parse_tool_calls

ZOOM = '{"name": "zoom_in", "arguments": {"bbox_2d": [10, 20, 110, 220], "label": "the sign"}}'

# (assistant turn, expected [(name, arguments)] for calls / ("error", substring of the message) for bad blocks)
GOOD = [
    pytest.param(
        "<think>The sign is too small to read; let me zoom in.</think>\n<tool_call>\n" + ZOOM + "\n</tool_call>",
        [("zoom_in", {"bbox_2d": [10, 20, 110, 220], "label": "the sign"})], id="deepeyes-style"),
    pytest.param(
        '<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 50, 50]}}\n</tool_call>\n'
        '<tool_call>\n{"name": "rotate", "arguments": {"angle": 90, "image_index": 1}}\n</tool_call>',
        [("zoom_in", {"bbox_2d": [0, 0, 50, 50]}), ("rotate", {"angle": 90, "image_index": 1})], id="two-calls"),
    pytest.param(
        "<tool_call>   \n\n  " + ZOOM + "  \n\t </tool_call>",
        [("zoom_in", {"bbox_2d": [10, 20, 110, 220], "label": "the sign"})], id="extra-whitespace"),
    pytest.param("<tool_call>" + ZOOM + "</tool_call>",
                 [("zoom_in", {"bbox_2d": [10, 20, 110, 220], "label": "the sign"})], id="no-newlines"),
    pytest.param("<tool_call>\n```json\n" + ZOOM + "\n```\n</tool_call>",
                 [("zoom_in", {"bbox_2d": [10, 20, 110, 220], "label": "the sign"})], id="json-fence"),
    pytest.param("<tool_call>```" + ZOOM + "```</tool_call>",
                 [("zoom_in", {"bbox_2d": [10, 20, 110, 220], "label": "the sign"})], id="bare-fence"),
    pytest.param('<tool_call>\n{"name": "calculator", "parameters": {"expression": "3*7"}}\n</tool_call>',
                 [("calculator", {"expression": "3*7"})], id="parameters-key"),
    pytest.param('<tool_call>{"name": "calculator", "arguments": "{\\"expression\\": \\"3*7\\"}"}</tool_call>',
                 [("calculator", {"expression": "3*7"})], id="arguments-as-json-string"),
    pytest.param('<tool_call>{"name": "list_drawers"}</tool_call>', [("list_drawers", {})], id="no-arguments"),
    pytest.param('<tool_call>{"name": "list_drawers", "arguments": null}</tool_call>', [("list_drawers", {})],
                 id="null-arguments"),
    pytest.param('<tool_call>{"name": " zoom_in ", "arguments": {}}</tool_call>', [("zoom_in", {})],
                 id="name-stripped"),
    pytest.param('Let me open drawer A.\n<tool_call>\n{"name": "open_drawer", "arguments": {"label": "A"}}\n'
                 '</tool_call>\nI will wait for the picture.', [("open_drawer", {"label": "A"})],
                 id="text-around"),
    pytest.param('<tool_call>{"name": "calculator", "arguments": {"expression": "héllo ∑"}}</tool_call>',
                 [("calculator", {"expression": "héllo ∑"})], id="unicode"),
]

BAD = [
    pytest.param('<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [10, 20, 110, 220]}\n</tool_call>',
                 [("error", "not valid JSON")], id="missing-brace"),
    pytest.param("<tool_call>\n{'name': 'zoom_in', 'arguments': {}}\n</tool_call>", [("error", "not valid JSON")],
                 id="python-quotes"),
    pytest.param('<tool_call>{"name": "zoom_in", "arguments": {}}}</tool_call>',
                 [("error", "unexpected text after the JSON object")], id="extra-brace"),
    pytest.param('<tool_call>{"arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>', [("error", "no \"name\"")],
                 id="missing-name"),
    pytest.param('<tool_call>{"name": "", "arguments": {}}</tool_call>', [("error", "no \"name\"")],
                 id="empty-name"),
    pytest.param('<tool_call>{"name": 7, "arguments": {}}</tool_call>', [("error", "no \"name\"")],
                 id="name-not-string"),
    pytest.param('<tool_call>{"name": "zoom_in", "arguments": [10, 20, 30, 40]}</tool_call>',
                 [("error", "\"arguments\" must be a JSON object, got an array")], id="arguments-list"),
    pytest.param('<tool_call>{"name": "zoom_in", "arguments": "bbox 10 20 30 40"}</tool_call>',
                 [("error", "is a string that is not valid JSON")], id="arguments-bad-string"),
    pytest.param('<tool_call>{"name": "zoom_in", "arguments": "[1, 2]"}</tool_call>',
                 [("error", "must be a JSON object, got an array")], id="arguments-string-of-list"),
    pytest.param('<tool_call>["zoom_in", {}]</tool_call>', [("error", "must be a JSON object, got an array")],
                 id="not-an-object"),
    pytest.param("<tool_call>\n\n</tool_call>", [("error", "empty")], id="empty"),
    pytest.param('<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}',
                 [("error", "not closed")], id="unclosed-at-end"),
    pytest.param('<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}\n'
                 '<tool_call>\n{"name": "rotate", "arguments": {"angle": 90}}\n</tool_call>',
                 [("error", "not closed"), ("rotate", {"angle": 90})], id="unclosed-then-good"),
    pytest.param('<tool_call>{"name": "rotate", "arguments": {"angle": 90}}</tool_call>\n<tool_call>{"name": }'
                 '</tool_call>', [("rotate", {"angle": 90}), ("error", "not valid JSON")], id="good-then-bad"),
]

NONE = [
    "The answer is 42.",
    "<answer>3</answer>",
    "",
    "I could use a tool_call here, but I won't.",
    "</tool_call> stray closing tag",
    "<tool_cal>{\"name\": \"zoom_in\"}</tool_cal>",
]


def _shape(calls):
    out = []
    for c in calls:
        if isinstance(c, ToolCall):
            out.append((c.name, c.arguments))
        else:
            assert isinstance(c, ToolCallError)
            out.append(("error", c.message))
    return out


@pytest.mark.parametrize("text, expected", GOOD + BAD)
def test_parse_tool_calls(text, expected):
    got = _shape(parse_tool_calls(text))
    assert len(got) == len(expected), got
    for (name, value), (want_name, want_value) in zip(got, expected):
        assert name == want_name, got
        if name == "error":
            assert want_value in value, value
        else:
            assert value == want_value


@pytest.mark.parametrize("text", NONE)
def test_no_tool_call_is_an_empty_list(text):
    assert parse_tool_calls(text) == []


def test_raw_is_the_whole_tagged_span():
    text = "before <tool_call>" + ZOOM + "</tool_call> after"
    [call] = parse_tool_calls(text)
    assert call.raw == "<tool_call>" + ZOOM + "</tool_call>"
    [err] = parse_tool_calls("x <tool_call>{oops")
    assert err.raw == "<tool_call>{oops"


def test_never_raises_on_garbage():
    texts = ["<tool_call>" * 50, "<tool_call></tool_call>" * 20, "<tool_call>{" + "[" * 5000 + "</tool_call>",
             "<tool_call>" + "[" * 100000 + "]" * 100000 + "</tool_call>",
             '<tool_call>{"name": "a", "arguments": "' + "[" * 100000 + "]" * 100000 + '"}</tool_call>',
             "<tool_call>\x00\x01\ud800</tool_call>", None, 42,
             '<tool_call>{"name": "a", "arguments": NaN}</tool_call>']
    for text in texts:
        calls = parse_tool_calls(text)
        assert all(isinstance(c, (ToolCall, ToolCallError)) for c in calls)
