"""What a generative judge is asked: prompt templates, and a `JudgeRequest` turned into chat messages.

A template is text with any of the fields `{question}`, `{completion}`, `{answer}` (the extracted final answer),
`{gold}` (the reference answer) and `{rubric}`, filled with `str.format` (write `{{` and `}}` for literal braces).
A judge's `template` option is either the name of a built-in template (`TEMPLATES`) or a literal template, which
must contain at least `{completion}`; any other field name is a `ValueError` naming it.

Built-in templates, and the verdict parser (`mmrft.judges.verdicts`) each one's reply format is made for
(`TEMPLATE_VERDICTS`, the generative judges' default parser for that template):

* `correctness` (fields question, gold, completion, answer): is the response's final answer equivalent to the
  reference answer? Reply yes or no. Parser `yes_no`.
* `rubric` (question, rubric, completion): score the response from 1 to 10 against the rubric, reply `Score: N`.
  Parser `scale` (1..10).
* `json_score` (question, gold, completion): reply a JSON object `{"score": S}` with S in [0, 1]. Parser
  `json_field`.

A request that lacks a value its template uses (no `gold` for `correctness`, no `rubric` for `rubric`) cannot be
judged: `render_prompt` raises `PromptError` (a `ValueError`), which the judges turn into that item's error rather
than asking the judge a question with a hole in it.

`build_messages` gives OpenAI chat-completions style messages whose user content is a list of parts, the request's
images first (`{"type": "image", "image": <PIL.Image>}`, the layout `transformers` processors' `apply_chat_template`
takes, see the local judge) then `{"type": "text", "text": ...}`; `to_openai_messages` turns them into the wire
format of a chat-completions server (images as PNG `data:` URLs).
"""

from __future__ import annotations

import base64
import hashlib
import io
import string
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from PIL import Image

from mmrft.data.media import load_image, to_rgb
from mmrft.judges.base import JudgeRequest

__all__ = [
    "FIELDS", "TEMPLATES", "TEMPLATE_VERDICTS", "PromptError", "resolve_template", "template_fields",
    "render_prompt", "load_images", "build_messages", "to_openai_messages", "image_data_url",
    "reject_unknown_options",
]

#: The fields a template may use, each filled from the `JudgeRequest` attribute of the same name.
FIELDS = ("question", "completion", "answer", "gold", "rubric")

TEMPLATES: dict[str, str] = {
    "correctness": (
        "You are grading a response to a question. Decide whether the final answer of the response is equivalent "
        "to the reference answer: the same value, the same choice or the same meaning. Ignore differences in "
        "formatting, wording and units that are written differently but mean the same, and do not grade the "
        "reasoning.\n\n"
        "Question:\n{question}\n\n"
        "Reference answer:\n{gold}\n\n"
        "Response:\n{completion}\n\n"
        "Final answer extracted from the response:\n{answer}\n\n"
        "Is the final answer of the response equivalent to the reference answer? Reply with one word: yes or no."
    ),
    "rubric": (
        "You are grading a response to a question against a rubric.\n\n"
        "Question:\n{question}\n\n"
        "Rubric:\n{rubric}\n\n"
        "Response:\n{completion}\n\n"
        "Score the response from 1 (does not meet the rubric at all) to 10 (meets it fully). You may explain "
        "briefly, then end your reply with a line of the form `Score: N`, where N is a whole number from 1 to 10."
    ),
    "json_score": (
        "You are grading a response to a question by comparing it with the reference answer.\n\n"
        "Question:\n{question}\n\n"
        "Reference answer:\n{gold}\n\n"
        "Response:\n{completion}\n\n"
        "How correct is the response? Reply with a JSON object only, of the form {{\"score\": S}}, where S is a "
        "number from 0 (wrong) to 1 (fully correct)."
    ),
}

#: The verdict parser whose input format each built-in template asks the judge for.
TEMPLATE_VERDICTS: dict[str, str] = {"correctness": "yes_no", "rubric": "scale", "json_score": "json_field"}


class PromptError(ValueError):
    """A request cannot be put into the template (it lacks a value the template uses)."""


def template_fields(text: str) -> list[str]:
    """The field names `text` uses, in order of first use; `ValueError` naming a field that is not one of `FIELDS`
    (or uses attribute/index access, or is positional) and for unbalanced braces."""
    fields: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise ValueError(f"judge template is not a valid format string ({e}); write {{{{ and }}}} for literal "
                         "braces") from None
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise ValueError(f"judge template has a positional field {{{field}}}; use named fields: "
                             f"{', '.join('{' + f + '}' for f in FIELDS)}")
        if field not in FIELDS:
            raise ValueError(f"judge template uses unknown field {{{field}}}; the fields are "
                             f"{', '.join('{' + f + '}' for f in FIELDS)} (write {{{{ and }}}} for literal braces)")
        if field not in fields:
            fields.append(field)
    return fields


def resolve_template(template: str) -> str:
    """A built-in template's name -> its text; a literal template (text with `{` in it) -> itself, after checking
    its fields (`template_fields`) and that it shows the judge the `{completion}`."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"judge template must be a built-in template name ({', '.join(TEMPLATES)}) or a template "
                         f"string with {{completion}}, got {template!r}")
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{" not in template:
        raise ValueError(f"unknown judge template {template!r}: not a built-in template ({', '.join(TEMPLATES)}), "
                         "and not a template string (a literal template must contain at least {completion})")
    if "completion" not in template_fields(template):
        raise ValueError("judge template must contain {completion} (the response to judge); got "
                         f"{_shorten(template, 120)!r}")
    return template


def render_prompt(request: JudgeRequest, template: str) -> str:
    """The template (a name or a literal, see `resolve_template`) filled with the request's fields; `PromptError`
    when the template uses a field the request has no value for (gold or rubric None)."""
    text = resolve_template(template)
    values: dict[str, str] = {}
    for field in template_fields(text):
        value = getattr(request, field)
        if value is None:
            raise PromptError(f"sample {request.sample_id!r} has no {field} (None), which the judge template uses "
                              f"as {{{field}}}")
        values[field] = str(value)
    return text.format(**values)


def _image_key(ref: Any) -> tuple:
    if isinstance(ref, Image.Image):
        return ("pil", id(ref))
    if isinstance(ref, Mapping):
        if ref.get("bytes") is not None:
            return ("bytes", hashlib.sha1(ref["bytes"]).hexdigest())
        return ("path", str(ref.get("path")))
    return ("path", str(ref))


def load_images(request: JudgeRequest, cache: Optional[dict] = None) -> list[Image.Image]:
    """The request's images as RGB PIL images: `ImageRef`s (paths, `{"path": ...}` / `{"bytes": ...}` dicts)
    through `mmrft.data.media.load_image` (a `DataError` naming the image when one cannot be read); PIL images
    are converted to RGB (a copy). `cache` (a dict the caller keeps for one batch) loads each image once when
    several requests share it (the completions of one sample)."""
    images = []
    for ref in request.images:
        key = _image_key(ref)
        if cache is not None and key in cache:
            images.append(cache[key])
            continue
        image = to_rgb(ref) if isinstance(ref, Image.Image) else load_image(ref)
        if cache is not None:
            cache[key] = image
        images.append(image)
    return images


def build_messages(request: JudgeRequest, template: str, system: Optional[str] = None, *,
                   image_cache: Optional[dict] = None) -> list[dict]:
    """Chat messages asking the judge about `request`: an optional system message, then one user message whose
    content is the request's images (`{"type": "image", "image": <PIL.Image>}`) followed by the rendered template
    (`{"type": "text", "text": ...}`).

    The layout is the one `transformers` processors' `apply_chat_template` takes (Qwen2-VL style templates write
    an image placeholder per image part); `to_openai_messages` converts it for a chat-completions server. Raises
    `PromptError` for a missing field and `mmrft.errors.DataError` for an unreadable image. `image_cache`: see
    `load_images`."""
    text = render_prompt(request, template)
    content: list[dict] = [{"type": "image", "image": im} for im in load_images(request, image_cache)]
    content.append({"type": "text", "text": text})
    messages: list[dict] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": str(system)}]})
    messages.append({"role": "user", "content": content})
    return messages


def image_data_url(image: Image.Image) -> str:
    """A PIL image as a `data:image/png;base64,...` URL (lossless, so the server sees the same pixels)."""
    buf = io.BytesIO()
    to_rgb(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai_messages(messages: list[dict], url_cache: Optional[dict] = None) -> list[dict]:
    """`build_messages`' messages in the OpenAI chat-completions wire format (JSON-serialisable): image parts become
    `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`, text parts and string contents are
    kept. The input is not modified. `url_cache` (a dict the caller keeps for one batch) encodes each image object
    once."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        parts = []
        for part in content:
            kind = part.get("type")
            if kind == "image":
                image = part.get("image")
                if not isinstance(image, Image.Image):
                    raise TypeError(f"image part holds {type(image).__name__}, expected a PIL image")
                if url_cache is None:
                    url = image_data_url(image)
                else:  # keyed by identity; the entry keeps the image alive so that its id is not reused
                    if id(image) not in url_cache:
                        url_cache[id(image)] = (image, image_data_url(image))
                    url = url_cache[id(image)][1]
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind == "text":
                parts.append({"type": "text", "text": part["text"]})
            else:
                raise ValueError(f"cannot send a message part of type {kind!r} to a chat-completions server")
        out.append({"role": message["role"], "content": parts})
    return out


def reject_unknown_options(kind: str, name: str, unknown: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """`TypeError` naming the judge, its kind, the unknown option(s) and the accepted ones, when `unknown` (the
    options a judge's `__init__` did not take) is not empty. Shared by the judge kinds of this package."""
    if unknown:
        names = ", ".join(sorted(unknown))
        raise TypeError(f"judge {name!r} (kind {kind}): unknown option(s) {names}; accepted options: "
                        f"{', '.join(sorted(accepted))}")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
