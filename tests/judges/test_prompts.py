"""Judge prompts: templates (built-in, literal, wrong), messages with images, the OpenAI wire format (a real PNG data
URL that decodes to the same pixels), and the same messages through a Qwen2-VL processor's chat template."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from mmrft.errors import DataError
from mmrft.judges.base import JudgeRequest
from mmrft.judges.prompts import (TEMPLATE_VERDICTS, TEMPLATES, PromptError, build_messages, reject_unknown_options,
                                  render_prompt, resolve_template, template_fields, to_openai_messages)
from tests.judges.conftest import make_requests

REQUEST = JudgeRequest(sample_id="q-1", question="What is 6 x 7?", completion="<think>6*7</think><answer>42</answer>",
                       answer="42", gold="42", rubric="states the product")


@pytest.mark.parametrize("name,fields", [
    ("correctness", ["question", "gold", "completion", "answer"]),
    ("rubric", ["question", "rubric", "completion"]),
    ("json_score", ["question", "gold", "completion"]),
])
def test_builtin_templates(name, fields):
    assert template_fields(TEMPLATES[name]) == fields
    text = render_prompt(REQUEST, name)
    assert "What is 6 x 7?" in text and "<answer>42</answer>" in text
    assert TEMPLATE_VERDICTS[name] in ("yes_no", "scale", "json_field")


def test_builtin_templates_ask_for_their_verdict_format():
    assert "yes or no" in render_prompt(REQUEST, "correctness")
    assert "Score: N" in render_prompt(REQUEST, "rubric") and "states the product" in render_prompt(REQUEST, "rubric")
    assert '{"score": S}' in render_prompt(REQUEST, "json_score")  # literal braces survive formatting


def test_literal_template():
    assert render_prompt(REQUEST, "Q: {question}\nA: {completion}\n{{not a field}}") == (
        "Q: What is 6 x 7?\nA: <think>6*7</think><answer>42</answer>\n{not a field}")


@pytest.mark.parametrize("template,message", [
    ("Q: {question} A: {completion} gold: {reference}", r"unknown field \{reference\}"),
    ("{completion} {question.upper}", r"unknown field \{question.upper\}"),
    ("{completion} {}", "positional field"),
    ("{completion} {0}", "positional field"),
    ("Question: {question}, is it right?", r"must contain \{completion\}"),
    ("{completion", "not a valid format string"),
    ("corectness", "unknown judge template 'corectness'.*correctness, rubric, json_score"),
    ("", "built-in template name"),
])
def test_bad_templates(template, message):
    with pytest.raises(ValueError, match=message):
        resolve_template(template)


def test_missing_values_are_prompt_errors():
    no_gold = JudgeRequest(sample_id="s9", question="q", completion="c", answer="a")
    with pytest.raises(PromptError, match=r"sample 's9' has no gold .*\{gold\}"):
        render_prompt(no_gold, "correctness")
    with pytest.raises(PromptError, match="no rubric"):
        render_prompt(no_gold, "rubric")
    assert render_prompt(no_gold, "{question}: {completion}") == "q: c"  # a template without gold is fine


def test_messages_images_first(image_files):
    with open(image_files[1], "rb") as f:
        embedded = {"bytes": f.read(), "path": None}
    pil = Image.new("RGBA", (20, 10), (0, 255, 0, 128))
    request = make_requests(1, images=(image_files[0], {"path": image_files[1]}, embedded, pil))[0]
    messages = build_messages(request, "correctness", system="You are a strict grader.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": "You are a strict grader."}]
    parts = messages[1]["content"]
    assert [p["type"] for p in parts] == ["image"] * 4 + ["text"]
    assert all(isinstance(p["image"], Image.Image) and p["image"].mode == "RGB" for p in parts[:4])
    assert parts[0]["image"].size == (96, 80) and parts[3]["image"].size == (20, 10)
    assert parts[1]["image"].tobytes() == parts[2]["image"].tobytes()
    assert parts[4]["text"] == render_prompt(request, "correctness")
    assert [m["role"] for m in build_messages(request, "correctness")] == ["user"]


def test_image_cache_loads_each_image_once(image_files):
    cache: dict = {}
    a, b = make_requests(2, images=(image_files[0],))
    ia = build_messages(a, "correctness", image_cache=cache)[0]["content"][0]["image"]
    ib = build_messages(b, "correctness", image_cache=cache)[0]["content"][0]["image"]
    assert ia is ib and len(cache) == 1


def test_unreadable_image_is_a_data_error(tmp_path):
    request = make_requests(1, images=(str(tmp_path / "missing.png"),))[0]
    with pytest.raises(DataError, match="missing.png"):
        build_messages(request, "correctness")


def test_openai_wire_format_round_trips_pixels(image_files):
    request = make_requests(1, images=(image_files[0], image_files[1]))[0]
    messages = build_messages(request, "correctness", system="sys")
    wire = to_openai_messages(messages)
    json.dumps(wire)  # serialisable
    assert wire[0] == {"role": "system", "content": [{"type": "text", "text": "sys"}]}
    parts = wire[1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    for part, original in zip(parts, image_files):
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert decoded.format == "PNG"
        expected = Image.open(original).convert("RGB")
        assert decoded.size == expected.size and decoded.convert("RGB").tobytes() == expected.tobytes()
    assert parts[2]["text"] == messages[1]["content"][2]["text"]
    assert messages[1]["content"][0]["type"] == "image"  # the input is not modified
    cache: dict = {}
    first = to_openai_messages(messages, cache)
    assert to_openai_messages(messages, cache) == first and len(cache) == 2


def test_messages_through_a_qwen2_vl_chat_template(judge_model_dir, image_files):
    from mmrft.models.load import load_processor

    processor = load_processor(str(judge_model_dir))
    request = make_requests(1, images=tuple(image_files))[0]
    messages = build_messages(request, "correctness", system="Grade strictly.")
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nGrade strictly.<|im_end|>\n<|im_start|>user\n"
                           "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>")
    assert request.question in text and request.completion in text and text.endswith("<|im_start|>assistant\n")
    images = [p["image"] for p in messages[-1]["content"] if p["type"] == "image"]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merged = int(inputs["image_grid_thw"].prod(-1).sum()) // 4
    assert int((inputs["input_ids"] == pad).sum()) == merged > 0
    # transformers' own path, which reads the images from the "image" parts
    direct = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    assert direct["input_ids"].tolist() == inputs["input_ids"].tolist()


def test_reject_unknown_options():
    reject_unknown_options("http", "j", {}, ["url"])
    with pytest.raises(TypeError, match=r"judge 'j' \(kind http\): unknown option\(s\) urll; accepted options: "
                                        r"model, url"):
        reject_unknown_options("http", "j", {"urll": 1}, ["url", "model"])
