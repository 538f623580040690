"""MMStar (val): 1,500 vision-indispensable multiple-choice questions, 6 core capabilities x 3 axes.

Files: ``mmstar.parquet`` of the HF dataset ``Lin-Chen/MMStar`` (``index, question, image, answer, category,
l2_category, meta_info``). The released ``question`` already lists the options inline
(``"...\\nOptions: A: ..., B: ..., C: ..., D: ..."``); they are parsed back out for the text-matching rule.

* prompt: the released question followed by ``"\\nAnswer with the option's letter from the given choices
  directly."``, the suffix the official MMStar evaluation appends to multiple-choice questions
  (github.com/MMStar-Benchmark/MMStar ``eval/vlmeval/vlm/llava_next.py::build_prompt``); the options are not
  rendered a second time since the released question already contains them.
* scoring: VLMEvalKit's rule-based matching (github.com/open-compass/VLMEvalKit
  ``vlmeval/utils/matching_util.py`` at 18fc37a: ``can_infer`` = ``can_infer_option`` then ``can_infer_text``),
  ported below, then ``hit = prediction == answer`` as in its ``multiple_choice.py``.
* categories: ``category`` (the 6 core capabilities) and ``l2_category`` (the 18 axes), as in the official
  ``eval/vlmeval/evaluate/mmstar.py`` (overall accuracy there is the mean over all 1,500 questions).
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Optional, Union

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import read_parquet
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark

__all__ = ["MMStar", "can_infer", "can_infer_option", "can_infer_text", "parse_inline_options"]

PROMPT_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
REQUIRED = ("index", "question", "image", "answer", "category", "l2_category")
_REJECT = (  # VLMEvalKit: refusals count as the non-option 'Z'
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_OPTIONS_RE = re.compile(r"Options\s*:")


def parse_inline_options(question: str) -> dict[str, str]:
    """``"...Options: A: x, B: y, C: z"`` -> ``{"A": "x", "B": "y", "C": "z"}`` (letters in order; ``{}`` if none).

    Each letter marker is searched after the previous one and must follow a comma or newline (``A`` may open the
    list), so commas inside an option's text do not split it.
    """
    starts = [m.end() for m in _OPTIONS_RE.finditer(question)]
    if not starts:
        return {}
    tail = question[starts[-1]:]
    marks: list[tuple[str, int, int]] = []
    pos = 0
    for letter in string.ascii_uppercase[:10]:
        lead = r"^\s*" if letter == "A" else r"[,\n]\s*"
        m = re.compile(lead + letter + r"\s*:\s?").search(tail, pos)
        if m is None:
            break
        marks.append((letter, m.start(), m.end()))
        pos = m.end()
    return {letter: tail[end:(marks[k + 1][1] if k + 1 < len(marks) else len(tail))].strip()
            for k, (letter, _, end) in enumerate(marks)}


# ----------------------------------------------------------------------------- VLMEvalKit, ported
def can_infer_option(answer: str, choices: dict[str, str]) -> Union[str, bool]:
    """VLMEvalKit ``can_infer_option``: exactly one option letter among the punctuation-split tokens.

    Its "A might be a quantifier" rejection only runs with ``VERBOSE`` set, so it is not applied here either.
    """
    if "Failed to obtain answer via API" in answer:
        return False
    if any(err in answer for err in _REJECT):
        return "Z"
    answer_mod = answer
    for c in ".()[],:;!*#{}":
        answer_mod = answer_mod.replace(c, " ")
    splits = [x.strip() for x in answer_mod.split()]
    count = sum(1 for c in choices if c in splits)
    if count == 1:
        for ch in choices:
            if ch in splits:
                return ch
    elif count == 0 and sum(1 for c in ("Z", "") if c in splits) == 1:
        return "Z"
    return False


def can_infer_text(answer: str, choices: dict[str, str]) -> Union[str, bool]:
    """VLMEvalKit ``can_infer_text``: exactly one option whose (lower-cased) text occurs in the answer."""
    answer = answer.lower()
    cands = [k for k, v in choices.items() if str(v).lower() in answer]
    return cands[0] if len(cands) == 1 else False


def can_infer(answer: Any, choices: dict[str, str]) -> Union[str, bool]:
    """VLMEvalKit ``can_infer``: the option letter, ``'Z'`` (refusal / no option), or ``False``."""
    answer = str(answer)
    copt = can_infer_option(answer, choices)
    return copt if copt else can_infer_text(answer, choices)


# ----------------------------------------------------------------------------- adapter
@register_benchmark("mmstar")
class MMStar(Benchmark):
    title = "MMStar (val)"
    source = "https://huggingface.co/datasets/Lin-Chen/MMStar: mmstar.parquet"
    layout = "DIR/mmstar.parquet"
    categories = ("category", "l2_category")
    deviations = (
        "VLMEvalKit asks an LLM judge (ChatGPT) to map the answer to an option when its rules (can_infer) find none; "
        "we use the rules only (VLMEvalKit's 'exact_matching' mode): such answers score 0. The MMStar repo's own "
        "script (eval/vlmeval/evaluate/mmstar.py) instead checks the first character ('B...', '(B', 'option B', "
        "'the answer is B'), stricter for chatty answers. Rules read final_text (the <answer> block, or the text "
        "after </think>)."
    )
    default_split = "val"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        split = split or self.default_split
        data_dir = Path(data_dir)
        path = data_dir / "mmstar.parquet"
        if split != "val":
            raise DataError(f"MMStar has a single split 'val' (mmstar.parquet), got split {split!r}")
        if not path.is_file():
            found = sorted(p.name for p in data_dir.iterdir()) if data_dir.is_dir() else []
            raise DataError(f"MMStar file not found: {path}; files in {data_dir}: {found or 'none'}")
        rows = read_parquet(path)
        return [self._sample(row, path, i) for i, row in enumerate(rows)]

    def _sample(self, row: dict, path: Path, i: int) -> Sample:
        where = f"{path}:row {i}"
        for name in REQUIRED:
            if row.get(name) is None:
                present = sorted(k for k, v in row.items() if v is not None)
                raise DataError(f"{where}: missing field '{name}' (present: {present})")
        question = row["question"]
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: field 'question': expected a non-empty string")
        options = parse_inline_options(question)
        answer = str(row["answer"]).strip()
        valid = sorted(options) or list("ABCD")
        if answer not in valid:
            raise DataError(f"{where}: field 'answer': expected one of {valid}, got {answer!r}")
        image = row["image"]
        if isinstance(image, dict) and image.get("bytes"):
            ref: Union[str, dict] = {"bytes": bytes(image["bytes"]),
                                     "path": image.get("path") if isinstance(image.get("path"), str) else None}
        elif isinstance(image, dict) and isinstance(image.get("path"), str) and image["path"]:
            ref = str((path.parent / image["path"]).resolve())
        else:
            raise DataError(f"{where}: field 'image': expected an embedded image {{bytes, path}}, got {image!r:.80}")
        meta_info = row.get("meta_info") if isinstance(row.get("meta_info"), dict) else {}
        metadata = {"categories": {"category": str(row["category"]), "l2_category": str(row["l2_category"])},
                    "options": options, "meta_info": meta_info}
        return Sample(id=str(row["index"]), prompt=question + PROMPT_SUFFIX, answer=answer, images=[ref],
                      task=self.name, metadata=metadata, source=where)

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            text = final_text(completion if isinstance(completion, str) else "")
            choices = dict(sample.metadata.get("options") or {}) or {c: "\0" for c in "ABCD"}
            pred = can_infer(text, choices)
            letter = pred if isinstance(pred, str) and pred in choices else None  # 'Z' / False: no option
            return Judgement(letter, 1.0 if letter is not None and letter == str(sample.answer) else 0.0)
        except Exception:
            return Judgement(None, 0.0)
