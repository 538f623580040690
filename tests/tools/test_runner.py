"""run_tool_call: every error kind, output normalisation, time limits, user tools by `module:function`, and the
registry's schemas."""

import signal
import threading
import time

import pytest
from PIL import Image

from mmrft.tools import (TOOLS, ToolCall, ToolCallError, ToolContext, ToolError, ToolOutput, parse_tool_calls,
                         register_tool, run_tool_call, tool_schemas, tool_spec)

U = "tests.tools.user_tools:"
EMPTY = {"type": "object", "properties": {}}
NUMBER_X = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}


def _img(w=40, h=20, colour=(255, 0, 0)):
    return Image.new("RGB", (w, h), colour)


@pytest.fixture
def ctx():
    return ToolContext(images=[_img()])


@pytest.fixture
def temp_tools():
    """Register test tools; remove them afterwards."""
    names = []

    def add(name, fn, parameters=EMPTY):
        register_tool(name, description=f"test tool {name}", parameters=parameters)(fn)
        names.append(name)
        return name

    yield add
    for name in names:
        TOOLS.unregister(name)


def call(name, **arguments):
    return ToolCall(name=name, arguments=arguments, raw="")


# ----------------------------------------------------------------------------------------------- error kinds


def test_parse_error(ctx):
    [bad] = parse_tool_calls("<tool_call>{not json}</tool_call>")
    out = run_tool_call(bad, ctx)
    assert out.error == "parse_error"
    assert out.text.startswith("Error: could not parse the tool call: the tool call is not valid JSON")
    assert run_tool_call(ToolCallError("x", "whatever"), ctx).error == "parse_error"


def test_unknown_tool_lists_the_available_ones(ctx):
    out = run_tool_call(call("teleport"), ctx)
    assert out.error == "unknown_tool"
    assert "unknown tool 'teleport'" in out.text and "zoom_in" in out.text and "calculator" in out.text


def test_a_tool_outside_allowed_is_unknown(ctx):
    out = run_tool_call(call("calculator", expression="1+1"), ctx, allowed=["zoom_in"])
    assert out.error == "unknown_tool"
    assert out.text == "Error: unknown tool 'calculator'; available tools: zoom_in"


def test_model_written_module_names_never_import(ctx):
    name = U + "never_named_by_the_config"
    for n in (name, "os:system", "subprocess:run", "builtins:exec"):
        out = run_tool_call(call(n), ctx)
        assert out.error == "unknown_tool", n
    assert name not in TOOLS
    # named by the config (in `allowed`), it is imported and runs
    out = run_tool_call(call(name), ctx, allowed=[name])
    assert out.error is None and out.text == "imported"


def test_an_allowed_module_tool_that_does_not_import_is_a_tool_error(ctx):
    out = run_tool_call(call("no_such_module_xyz:f"), ctx, allowed=["no_such_module_xyz:f"])
    assert out.error == "tool_error" and "cannot be loaded" in out.text


@pytest.mark.parametrize("arguments, fragment", [
    ({}, "missing required argument 'bbox_2d'"),
    ({"bbox_2d": [1, 2, 3, 4], "zoom": 3}, "unexpected argument 'zoom'"),
    ({"bbox_2d": [1, 2, 3, "4"]}, "'bbox_2d[3]' must be a number, got a string"),
    ({"bbox_2d": [1, 2, 3, False]}, "'bbox_2d[3]' must be a number, got a boolean"),
    ({"bbox_2d": [1, 2, 3, float("inf")]}, "must be a finite number"),
    ({"bbox_2d": [1, 2, 3, 4], "image_index": "0"}, "'image_index' must be an integer, got a string"),
])
def test_bad_arguments(ctx, arguments, fragment):
    out = run_tool_call(call("zoom_in", **arguments), ctx)
    assert out.error == "bad_arguments"
    assert out.text.startswith("Error: bad arguments for zoom_in: ") and fragment in out.text, out.text


def test_exceptions_in_a_tool_are_tool_errors(ctx, temp_tools):
    def broken(ctx):
        raise KeyError("missing thing")

    def exits(ctx):
        raise SystemExit(3)

    def polite(ctx):
        raise ToolError("the drawer is locked")

    assert run_tool_call(call(temp_tools("t_broken", broken)), ctx).text == \
        "Error: t_broken failed: KeyError: 'missing thing'"
    assert run_tool_call(call(temp_tools("t_exits", exits)), ctx).error == "tool_error"
    out = run_tool_call(call(temp_tools("t_polite", polite)), ctx)
    assert (out.error, out.text) == ("tool_error", "Error: t_polite: the drawer is locked")


@pytest.mark.parametrize("value", [None, 42, {"text": "x"}, [["nested"]], ToolOutput(text=3),
                                   ToolOutput(images=["not an image"])])
def test_unsupported_return_values_are_tool_errors(ctx, temp_tools, value):
    name = temp_tools("t_returns", lambda ctx: value)
    out = run_tool_call(call(name), ctx)
    assert out.error == "tool_error" and out.text.startswith("Error: t_returns failed: TypeError"), out.text


def test_timeout_interrupts_a_sleeping_and_a_spinning_tool(ctx):
    for name, args in ((U + "sleepy", {"seconds": 30}), (U + "spin", {})):
        start = time.monotonic()
        out = run_tool_call(call(name, **args), ctx, timeout_s=0.3, allowed=[name])
        assert time.monotonic() - start < 5
        assert out.error == "timeout"
        assert out.text == f"Error: {name} took longer than 0.3 s and was stopped"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # nothing left armed


def test_a_call_within_its_time_limit_succeeds(ctx):
    name = U + "sleepy"
    out = run_tool_call(call(name, seconds=0.01), ctx, timeout_s=2, allowed=[name])
    assert (out.error, out.text) == (None, "slept 0.01")


def test_off_the_main_thread_calls_run_untimed(ctx):
    name = U + "sleepy"
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        out=run_tool_call(call(name, seconds=0.3), ctx, timeout_s=0.05, allowed=[name])))
    thread.start()
    thread.join(10)
    assert result["out"].error is None and result["out"].text == "slept 0.3"


def test_an_outer_time_limit_is_left_alone(ctx):
    class Outer(BaseException):
        pass

    def handler(signum, frame):
        raise Outer()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        out = run_tool_call(call("calculator", expression="2+2"), ctx, timeout_s=0.1)
        assert out.text == "2+2 = 4"
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 20  # still armed, not reset
        assert signal.getsignal(signal.SIGALRM) is handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------------------------- outputs


def test_return_values_are_normalised(ctx, temp_tools):
    red, blue = _img(), _img(colour=(0, 0, 255))
    cases = {
        "t_str": ("hello", ToolOutput(text="hello")),
        "t_img": (red, ToolOutput(images=[red])),
        "t_list": (["a", red, "b", blue], ToolOutput(text="a\nb", images=[red, blue])),
        "t_out": (ToolOutput(text="x", images=[blue]), ToolOutput(text="x", images=[blue])),
    }
    for name, (value, expected) in cases.items():
        temp_tools(name, lambda ctx, value=value: value)
        assert run_tool_call(call(name), ctx) == expected


def test_returned_images_are_fitted_into_the_pixel_budget(temp_tools):
    name = temp_tools("t_big", lambda ctx: Image.new("RGB", (400, 200)))
    out = run_tool_call(call(name), ToolContext(max_pixels=20000))
    assert out.images[0].size == (200, 100)
    out = run_tool_call(call(name), ToolContext(min_pixels=320000))
    assert out.images[0].size == (800, 400)


def test_long_text_is_truncated(ctx, temp_tools):
    name = temp_tools("t_long", lambda ctx: "x" * 100000)
    out = run_tool_call(call(name), ctx)
    assert len(out.text) < 4100 and out.text.endswith("(output truncated)")


def test_run_tool_call_does_not_change_the_context(ctx):
    run_tool_call(call("zoom_in", bbox_2d=[0, 0, 10, 10]), ctx)
    assert ctx.returned == []


# ----------------------------------------------------------------------------------------------- registry


def test_user_tool_by_module_name_derives_its_schema(ctx):
    name = U + "scale_image"
    [schema] = tool_schemas([name])
    assert schema == {"type": "function", "function": {
        "name": name,
        "description": "Scale an image by a factor.",
        "parameters": {"type": "object",
                       "properties": {"factor": {"type": "number", "description": "how much larger to make the image"},
                                      "image_index": {"type": "integer", "description": "which image to scale"}},
                       "required": ["factor"]}}}
    assert TOOLS.info(name)["parameters"] == schema["function"]["parameters"]  # cached as registry info
    out = run_tool_call(call(name, factor=2), ctx, allowed=[name])
    assert out.error is None and out.images[0].size == (80, 40)
    bad = run_tool_call(call(name, factor="2"), ctx, allowed=[name])
    assert bad.error == "bad_arguments" and "'factor' must be a number" in bad.text


def test_user_tool_without_docs_gets_a_minimal_schema(ctx):
    name = U + "undocumented"
    params = tool_spec(name)["parameters"]
    assert params["properties"] == {"x": {}, "y": {}} and params["required"] == ["x"]
    out = run_tool_call(call(name, x=[1], z=3), ctx, allowed=[name])
    assert out.text == "x=[1] y=2 extra=['z']"


def test_builtin_schemas_are_in_the_function_calling_format():
    schemas = tool_schemas(["zoom_in", "rotate", "calculator", "open_drawer"])
    assert [s["function"]["name"] for s in schemas] == ["zoom_in", "rotate", "calculator", "open_drawer"]
    for s in schemas:
        assert s["type"] == "function"
        assert set(s["function"]) == {"name", "description", "parameters"}
        assert s["function"]["description"]
        assert s["function"]["parameters"]["type"] == "object"
    with pytest.raises(KeyError, match="unknown tool 'nope'"):
        tool_schemas(["nope"])
    with pytest.raises(TypeError):
        tool_schemas("zoom_in")


def test_register_tool_refuses_a_second_tool_under_a_taken_name(temp_tools):
    def first(ctx):
        return "a"

    def second(ctx):
        return "b"

    name = temp_tools("t_taken", first)
    with pytest.raises(ValueError, match="already registered"):
        register_tool(name, description="", parameters=EMPTY)(second)
    register_tool(name, description="", parameters=EMPTY, override=True)(second)
    assert TOOLS[name] is second
    with pytest.raises(ValueError, match="type 'object'"):
        register_tool("t_bad_schema", description="", parameters={"type": "array"})
