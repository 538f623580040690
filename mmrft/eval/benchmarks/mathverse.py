"""MathVerse (testmini): six problem versions per problem, from Text Dominant to Vision Only.

Official files followed:

* Hugging Face ``AI4Math/MathVerse`` (``testmini.parquet`` / ``testmini.json``): the prompt is the release's
  ``query_cot`` field, the chain-of-thought prompt of the official evaluation ("Please first conduct reasoning, and
  then answer the question and provide ..."); ``query_wo`` is the direct-answer variant (lmms-eval's default,
  ``lmms_eval/tasks/mathverse/mathverse_testmini.yaml``).  Set :attr:`MathVerse.query_field` to use it instead.
* github.com/ZrrSkywalker/MathVerse ``evaluation/extract_answer_s1.py``, ``evaluation/score_answer_s2.py`` and
  ``evaluation/prompts.py``: the official score is a GPT extraction followed by a GPT judge (``quick_match`` is plain
  string equality of extraction and answer); per-version and per-subject/subfield accuracies.

We score with rules instead (see :attr:`MathVerse.deviations`): multi-choice answers are read as option letters
(letter or option text, via :func:`mmrft.rewards.choice.named_options` with the options parsed from
``question_for_eval``); free-form answers match by string equality (the official quick match), by number, or by
math-verify equivalence (:func:`mmrft.rewards.math.math_reward`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.eval.benchmarks.base import read_json as _read_json, read_parquet as _read_parquet
from mmrft.rewards.choice import named_options
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.math import math_reward
from mmrft.rewards.numeric import normalize_text, numbers_match, parse_number

__all__ = ["MathVerse", "parse_choices"]

_CHOICES_RE = re.compile(r"Choices\s*:", re.IGNORECASE)
_OPTION_LINE_RE = re.compile(r"^\s*(?:\(([A-H])\)|([A-H])\s*[:：.])\s*(.*?)\s*$")
_LETTER_RE = re.compile(r"\s*\(?([A-Za-z])\)?\s*")
_PLAIN_NUMBER_RE = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|(?<=\d)\s*(?:degrees?\b|°)")
_DEFAULT_LETTERS = "ABCDEFGH"  # options in the image (Vision Only): A-E, or up to the gold


def parse_choices(question: str) -> dict[str, str]:
    """Options listed after ``Choices:`` one per line (``A:40°``, ``B. 60°``, ``(C) 120°``) -> ``{"A": "40°"}``."""
    m = None
    for m in _CHOICES_RE.finditer(question or ""):
        pass
    if m is None:
        return {}
    options: dict[str, str] = {}
    for line in question[m.end():].split("\n"):
        opt = _OPTION_LINE_RE.match(line)
        letter = (opt.group(1) or opt.group(2)) if opt else None
        if opt and letter and letter not in options:
            options[letter] = opt.group(3)
        elif line.strip() and options:
            break
    return options


@register_benchmark("mathverse")
class MathVerse(Benchmark):
    """MathVerse testmini (3,940 samples: 788 problems x 5 versions with images)."""

    title = "MathVerse (testmini)"
    source = ("https://huggingface.co/datasets/AI4Math/MathVerse (testmini.parquet, images embedded; or "
              "testmini.json + images.zip)")
    layout = "DIR/testmini.parquet; or DIR/testmini.json + DIR/[images/]images_version_*/*.png"
    categories = ("problem_version", "subject", "subfield", "question_type")
    deviations = ("official scoring is a GPT answer extraction plus a GPT judge; we use rules: the extracted "
                  "answer (boxed / <answer> / 'answer is' / last line) must name exactly the gold option "
                  "(letter or option text) for multi-choice, and for free-form equal the gold as a string, as "
                  "a number, or under math-verify equivalence (units and wordy golds the GPT judge accepts may "
                  "be missed)")
    default_split = "testmini"
    query_field: ClassVar[str] = "query_cot"  # "query_wo" for the direct-answer prompt

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        data_dir = Path(data_dir)
        split = split or self.default_split
        parquet, js = data_dir / f"{split}.parquet", data_dir / f"{split}.json"
        if parquet.is_file():
            rows = [(f"{parquet}: row {i}", r) for i, r in enumerate(_read_parquet(parquet))]
        elif js.is_file():
            data = _read_json(js)
            if not isinstance(data, list):
                raise DataError(f"{js}: expected a JSON list of samples, got {type(data).__name__}")
            rows = [(f"{js}: item {i}", r) for i, r in enumerate(data)]
        else:
            found = sorted(p.name for p in data_dir.iterdir() if p.suffix in (".parquet", ".json")) \
                if data_dir.is_dir() else []
            raise DataError(f"{data_dir}: no MathVerse '{split}' split: expected {split}.parquet or {split}.json; "
                            f"found {found or 'no .parquet/.json files'}")
        return [self._sample(row, where, data_dir) for where, row in rows]

    def _sample(self, row: Any, where: str, base: Path) -> Sample:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object, got {type(row).__name__}")

        def text(name: str, required: bool = True) -> Optional[str]:
            value = row.get(name)
            if value is None and not required:
                return None
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                got = "null" if value is None else type(value).__name__
                raise DataError(f"{where}: field '{name}': expected a string, got {got}")
            return value

        sid = text("sample_index")
        qtype, answer = text("question_type"), text("answer")
        if not answer.strip():  # type: ignore[union-attr]
            raise DataError(f"{where}: field 'answer': empty")
        prompt = text(self.query_field)
        meta = row.get("metadata") or {}
        if not isinstance(meta, dict):
            raise DataError(f"{where}: field 'metadata': expected an object, got {type(meta).__name__}")
        question = text("question", required=False) or ""
        question_for_eval = text("question_for_eval", required=False) or question
        images = _image_refs(row.get("image"), base, where)
        version = text("problem_version")
        metadata = {
            "problem_index": text("problem_index", required=False),
            "problem_version": version,
            "question": question,
            "question_for_eval": question_for_eval,
            "question_type": qtype,
            "options": parse_choices(question_for_eval),
            **{k: meta.get(k) for k in ("split", "source", "subject", "subfield")},
            "categories": {"problem_version": version, "subject": meta.get("subject"),
                           "subfield": meta.get("subfield"), "question_type": qtype},
        }
        record = {"id": sid, "prompt": prompt, "answer": answer, "images": images, "task": self.name,
                  "metadata": metadata}
        return Sample.from_row(record, base_dir=base, where=where)

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            text = final_text(completion)
            pred = extract_answer(text)
            if pred is None:
                return Judgement(None, 0.0)
            gold = str(sample.answer).strip()
            md = sample.metadata
            gold_letter = _LETTER_RE.fullmatch(gold)
            if md.get("question_type") == "multi-choice" and gold_letter:
                options = dict(md.get("options") or {})
                gold_l = gold_letter.group(1).upper()
                valid = "".join(sorted(options)) or _DEFAULT_LETTERS[: max(5, ord(gold_l) - 64)]
                named = named_options(_DEGREE_RE.sub("°", pred), options, valid)  # 140^\circ, 140 degrees: 140°
                if len(named) != 1:
                    return Judgement(None, 0.0)  # no option, or several ("A or C")
                letter = named.pop()
                return Judgement(letter, 1.0 if letter == gold_l else 0.0)
            return Judgement(_canonical(pred, gold), 1.0 if _free_form_match(text, pred, gold) else 0.0)
        except Exception:
            return Judgement(None, 0.0)


def _canonical(pred: str, gold: str) -> str:
    """The extracted answer as reported (and voted on): the last number when the gold is a number."""
    values = parse_number(pred) if _PLAIN_NUMBER_RE.fullmatch(gold) else None
    if values is None:
        return pred
    return str(int(values[0])) if values[0].is_integer() and abs(values[0]) < 1e15 else repr(values[0])


def _free_form_match(text: str, pred: str, gold: str) -> bool:
    if normalize_text(pred) == normalize_text(gold):  # the official quick_match (string equality)
        return True
    if _PLAIN_NUMBER_RE.fullmatch(gold):
        values = parse_number(pred)
        if values is not None and numbers_match(values, (float(gold),), 1e-4, 1e-8):
            return True
    try:
        return math_reward(text, {"answer": gold}) == 1.0
    except ValueError:  # math-verify cannot parse the gold (prose answers such as intervals with words)
        return False


def _image_refs(value: Any, base: Path, where: str) -> list:
    """The ``image`` field: embedded ``{bytes, path}`` (parquet), a relative path (JSON), or empty (text-only)."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        if value.get("bytes"):
            return [value]
        value = value.get("path")
        if not value:
            return []
    if not isinstance(value, str):
        raise DataError(f"{where}: field 'image': expected a path or embedded image, got {type(value).__name__}")
    # images.zip unpacks to images/images_version_*/...; accept the folders at the top level too
    for candidate in (value, f"images/{value}"):
        if (base / candidate).is_file():
            return [candidate]
    return [value]  # missing: reported by the runner with the sample id


