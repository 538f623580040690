"""MathVista (testmini): visual math QA, scored with the official rule-based normalisation.

Official files followed (github.com/lupantech/MathVista):

* ``evaluation/build_query.py`` and ``data/query.json``: the prompt is the release's ``query`` field
  ("Hint: ...\\nQuestion: ... (Unit: u)\\nChoices:\\n(A) ..."); :func:`build_query` rebuilds it the same way for
  the GitHub layout when ``query.json`` is absent.
* ``evaluation/extract_answer.py``: the rule shortcuts (empty -> nothing; a response that *is* an option text;
  ``int(response)`` / ``float(response)``; quick extraction ``The answer is "X".``).  The official fallback is a
  GPT-4 extraction prompt; we replace it with a rule extractor (see :attr:`MathVista.deviations`).
* ``evaluation/calculate_score.py``: ``normalize_extracted_answer`` (multi_choice: ``(X)`` -> letter -> option
  text, else the option nearest in edit distance; integer: ``str(int(float(x)))``; float:
  ``str(round(float(x), precision))``; list: ``str(x)``) and ``safe_equal`` (string equality with the gold);
  category keys as in its ``target_keys`` (``skills`` is a list).

mmrft's rule extractor (:func:`_rule_extract`), used where the official code would ask GPT-4, is not official: the official
shortcuts run first, on the response as written; then the rules of :mod:`mmrft.eval.benchmarks.answer_rules`
(CJK normalisation, the answer span, the option or the number that answers the question), documented there
with their limits.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.answer_rules import (JUSTIFICATION_RE, answer_number, answer_span, cjk_normalize,
                                               option_by_value)
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.eval.benchmarks.base import read_json as _read_json, read_parquet as _read_parquet
from mmrft.rewards.choice import named_options

__all__ = ["MathVista", "build_query", "normalize_extracted_answer", "answer_number"]

_CATEGORY_KEYS = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade",
                  "skills")
_META_KEYS = ("split", "language", "img_width", "img_height", "source", "category", "task", "context", "grade",
              "skills")
_QUICK_RE = re.compile(r'The answer is "(.*)"\.')
_PAREN_LETTER_RE = re.compile(r"\(([a-zA-Z])\)")
_LIST_RE = re.compile(r"\[([^\[\]]*)\]")
_LIST_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_EDIT = 2000  # longer extractions are not compared by edit distance


def build_query(problem: dict) -> str:
    """The zero-shot ``query`` of ``build_query.py`` / ``data/query.json``: hint, question (+ unit), choices."""
    qtype, atype, precision = problem.get("question_type"), problem.get("answer_type"), problem.get("precision")
    if qtype == "multi_choice":
        hint = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
    elif atype == "integer":
        hint = ("Hint: Please answer the question requiring an integer answer and provide the final value, "
                "e.g., 1, 2, 3, at the end.")
    elif atype == "float" and precision == 1:
        hint = ("Hint: Please answer the question requiring a floating-point number with one decimal place and "
                "provide the final value, e.g., 1.2, 1.3, 1.4, at the end.")
    elif atype == "float" and precision == 2:
        hint = ("Hint: Please answer the question requiring a floating-point number with two decimal places and "
                "provide the final value, e.g., 1.23, 1.34, 1.45, at the end.")
    elif atype == "list":
        hint = ("Hint: Please answer the question requiring a Python list as an answer and provide the final list, "
                "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.")
    else:
        raise ValueError(f"no official hint for question_type={qtype!r}, answer_type={atype!r}, precision={precision!r}")
    question = f"Question: {problem['question']}"
    if problem.get("unit"):
        question += f" (Unit: {problem['unit']})"
    parts = [hint, question]
    if problem.get("choices"):
        parts.append("\n".join(["Choices:"] + [f"({chr(65 + i)}) {c}" for i, c in enumerate(problem["choices"])]))
    return "\n".join(parts)


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalize_extracted_answer(extraction: Optional[str], choices: list, question_type: str, answer_type: str,
                               precision: Optional[int]) -> Optional[str]:
    """``calculate_score.normalize_extracted_answer`` with ``ignore_empty_extractions=True``.

    One difference, for multi_choice: the official code maps *any* extraction to the option nearest in
    Levenshtein distance; here the nearest option is taken only when the distance is at most half the longer
    string (the official input is a GPT-cleaned answer, ours may be a stray sentence), else ``None``.
    """
    if question_type == "multi_choice":
        extraction = (extraction or "").strip()
        if not extraction:
            return None
        letter = _PAREN_LETTER_RE.findall(extraction)
        if letter:
            extraction = letter[0].upper()
        letters = [chr(65 + i) for i in range(len(choices))]
        if extraction in letters:
            return choices[letters.index(extraction)]
        if len(extraction) > _MAX_EDIT:
            return None
        best = min(choices, key=lambda c: _edit_distance(extraction, c))  # first of equals, like list.index(min)
        return best if _edit_distance(extraction, best) <= max(len(extraction), len(best)) / 2 else None
    if extraction is None:
        return None
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return str(round(float(extraction), int(precision)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return str(extraction)  # list (and anything else): compared as written


def _rule_extract(response: str, md: dict) -> Optional[str]:
    """``extract_answer.extract_answer(quick_extract=True)``: its rule shortcuts, then (in place of GPT-4) mmrft's
    rule extractor (module docstring, rules 1-4)."""
    # --- official shortcuts, on the response as written
    if response == "":
        return None
    choices, qtype, atype = md["choices"], md["question_type"], md["answer_type"]
    if qtype == "multi_choice" and response in choices:
        return response
    if atype == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if atype == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    quick = _QUICK_RE.search(response)
    if quick:
        return quick.group(1)
    # --- mmrft's rules, replacing the GPT-4 extraction
    question = md.get("question") or ""
    ans = answer_span(cjk_normalize(response))  # rules 1 and 2
    if ans is None:
        return None
    if qtype == "multi_choice":  # rule 3
        options = {chr(65 + i): cjk_normalize(str(c)) for i, c in enumerate(choices)}
        for letter, text in options.items():
            if ans == text:
                return letter
        named = named_options(ans, options, "".join(options))
        justification = JUSTIFICATION_RE.search(ans)
        if len(named) > 1 and justification:  # "A, since 360 - 122 - 141 = 97": options in the reason don't count
            named = named_options(ans[: justification.start()], options, "".join(options))
        if len(named) == 1:
            return named.pop()
        if named:
            return None  # several options named: no single answer
        return option_by_value(ans, question, options) or ans
    if atype in ("integer", "float"):
        values = answer_number(ans, question)  # rule 4
        return None if values is None else repr(values[0])
    if atype == "list":
        found = _LIST_RE.findall(ans)
        items = _LIST_NUM_RE.findall(found[-1] if found else ans)
        return "[" + ", ".join(items) + "]" if items else None
    return ans


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


@register_benchmark("mathvista")
class MathVista(Benchmark):
    """MathVista testmini (1,000 problems) with the official rule-based scorer."""

    title = "MathVista (testmini)"
    source = ("https://huggingface.co/datasets/AI4Math/MathVista (data/testmini-*.parquet); or the GitHub release "
              "github.com/lupantech/MathVista data/testmini.json + data/query.json + images/")
    layout = "DIR/data/testmini-*.parquet (HF); or DIR/testmini.json [+ DIR/query.json] + DIR/images/*.jpg (GitHub)"
    categories = _CATEGORY_KEYS
    deviations = ("official answer extraction falls back to GPT-4; we use its rule shortcuts plus a rule extractor "
                  "(boxed / <answer> / an English or Chinese answer statement, hedged or not / last line; then an "
                  "option letter or text, or the one option equal to the stated number with or without a unit; or "
                  "the number that answers the question: the last one, after setting aside parenthesised remarks, "
                  "justifications, breakdowns and comparisons, preferring a conclusion and a number in front of the "
                  "counted noun; or a list), and map a non-letter multi-choice answer to the nearest option by edit "
                  "distance only when it is close (official: always the nearest); empty extractions score 0 "
                  "(official --ignore_empty_extractions)")
    default_split = "testmini"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        data_dir = Path(data_dir)
        split = split or self.default_split
        shards = sorted(data_dir.glob(f"data/{split}-*.parquet")) or sorted(data_dir.glob(f"{split}-*.parquet"))
        if shards:
            rows: list[tuple[str, dict]] = []
            for shard in shards:
                rows += [(f"{shard}: row {i}", r) for i, r in enumerate(_read_parquet(shard))]
            return [self._sample(r, where, data_dir) for where, r in rows]
        for base in (data_dir, data_dir / "data"):
            path = base / f"{split}.json"
            if path.is_file():
                return self._load_github(path, base)
        found = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.suffix in (".parquet", ".json"))
        raise DataError(f"{data_dir}: no MathVista '{split}' split: expected data/{split}-*.parquet or {split}.json; "
                        f"found {found[:20] or 'no .parquet/.json files'}")

    def _load_github(self, path: Path, base: Path) -> list[Sample]:
        data = _read_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object keyed by pid, got {type(data).__name__}")
        queries = _read_json(base / "query.json") if (base / "query.json").is_file() else {}
        samples = []
        for pid, row in data.items():
            where = f"{path}: pid {pid}"
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected an object, got {type(row).__name__}")
            row = {"pid": pid, **row}
            if isinstance(queries, dict) and isinstance(queries.get(pid), str):
                row["query"] = queries[pid]
            samples.append(self._sample(row, where, base))
        return samples

    def _sample(self, row: dict, where: str, base: Path) -> Sample:
        def field(name: str, kinds: tuple, required: bool = True) -> Any:
            value = _none_if_nan(row.get(name))
            if value is None and not required:
                return None
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise DataError(f"{where}: field '{name}': expected {'/'.join(k.__name__ for k in kinds)}, "
                                f"got {type(value).__name__ if value is not None else 'null'}")
            return value

        pid = str(field("pid", (str, int)))
        answer = str(field("answer", (str, int, float)))
        if not answer.strip():
            raise DataError(f"{where}: field 'answer': empty (the test split's answers are not public; use testmini)")
        qtype, atype = field("question_type", (str,)), field("answer_type", (str,))
        choices = [str(c) for c in (field("choices", (list, tuple), required=False) or [])]
        if qtype == "multi_choice" and not choices:
            raise DataError(f"{where}: field 'choices': required for a multi_choice question")
        precision = field("precision", (int, float), required=False)
        precision = int(precision) if precision is not None else None
        if atype == "float" and precision is None:
            raise DataError(f"{where}: field 'precision': required for a float answer")
        meta = field("metadata", (dict,), required=False) or {}
        problem = {"question": field("question", (str,)), "unit": field("unit", (str,), required=False),
                   "choices": choices, "precision": precision, "question_type": qtype, "answer_type": atype}
        query = field("query", (str,), required=False)
        if query is None:
            try:
                query = build_query(problem)
            except ValueError as e:
                raise DataError(f"{where}: {e}") from None
        image = row.get("decoded_image")
        if isinstance(image, dict) and image.get("bytes"):
            images: list = [image]
        else:
            images = [field("image", (str,))]
        categories = {k: (problem[k] if k in problem else meta.get(k)) for k in _CATEGORY_KEYS}
        categories["skills"] = [str(s) for s in (meta.get("skills") or [])]
        metadata = {**problem, **{k: meta.get(k) for k in _META_KEYS}, "categories": categories}
        record = {"id": pid, "prompt": query, "answer": answer, "images": images, "task": self.name,
                  "metadata": metadata}
        return Sample.from_row(record, base_dir=base, where=where)

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            md = sample.metadata
            extraction = _rule_extract(final_text(completion), md)
            pred = normalize_extracted_answer(extraction, md["choices"], md["question_type"], md["answer_type"],
                                              md["precision"])
            if pred is None:
                return Judgement(None, 0.0)
            return Judgement(pred, 1.0 if pred == str(sample.answer) else 0.0)  # safe_equal: string equality
        except Exception:
            return Judgement(None, 0.0)


