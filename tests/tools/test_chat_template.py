"""tool_schemas against a real processor's chat template (the tiny Qwen2-VL model): what the Qwen2-VL template does
with `tools=` (it ignores them), and the fallback that puts the tool list into the system message."""

import json

import pytest

import mmrft  # noqa: F401  (registers the tiny model's processor class with AutoProcessor)
from mmrft.data.prompts import template_renders_tools, tools_system_text
from mmrft.tools import format_tool_response, tool_schemas

NAMES = ["zoom_in", "rotate", "calculator"]

# A minimal tool-aware template (the shape of Qwen2.5's tools block), to show the schemas render where supported.
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n"
    "</tools><|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What does the sign say?"}]}]


def test_tool_schemas_shape():
    schemas = tool_schemas(NAMES)
    json.dumps(schemas)  # plain JSON
    for name, schema in zip(NAMES, schemas):
        assert schema["type"] == "function"
        assert schema["function"]["name"] == name
        assert schema["function"]["parameters"]["type"] == "object"
        assert isinstance(schema["function"]["parameters"]["properties"], dict)


def test_the_tiny_qwen2_vl_template_accepts_but_ignores_tools(processor):
    schemas = tool_schemas(NAMES)
    with_tools = processor.apply_chat_template(MESSAGES, tools=schemas, tokenize=False, add_generation_prompt=True)
    without = processor.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert with_tools == without  # the Qwen2-VL template has no tools block: tools= is accepted and dropped
    assert "zoom_in" not in with_tools
    assert template_renders_tools(processor) is False
    assert template_renders_tools(processor.tokenizer) is False


def test_the_fallback_tool_list_in_the_system_message(processor):
    schemas = tool_schemas(NAMES)
    messages = [{"role": "system", "content": [{"type": "text", "text": tools_system_text(schemas)}]}] + MESSAGES
    messages += [
        {"role": "assistant", "content": [{"type": "text", "text":
            '<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [10, 10, 90, 60]}}\n</tool_call>'}]},
        {"role": "tool", "content": [{"type": "image"}, {"type": "text", "text": format_tool_response(
            "Zoomed in on image 0 at [10, 10, 90, 60] (pixels); this is image 1.")}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    for schema in schemas:
        assert json.dumps(schema) in text  # every schema, verbatim, one a line
    assert "<|im_start|>tool\n<|vision_start|><|image_pad|><|vision_end|><tool_response>\nZoomed in" in text
    assert text.count("<|image_pad|>") == 2
    assert text.endswith("<|im_start|>assistant\n")


def test_a_tool_aware_template_renders_the_schemas(processor):
    schemas = tool_schemas(NAMES)
    tokenizer = processor.tokenizer
    text = tokenizer.apply_chat_template(MESSAGES, tools=schemas, chat_template=TOOL_TEMPLATE, tokenize=False,
                                         add_generation_prompt=True)
    for name in NAMES:
        assert f'"name": "{name}"' in text

    class WithToolTemplate:
        def apply_chat_template(self, messages, **kwargs):
            return tokenizer.apply_chat_template(messages, chat_template=TOOL_TEMPLATE, **kwargs)

    assert template_renders_tools(WithToolTemplate()) is True
