"""Geometry3K (test): 601 geometry problems with a diagram, four choices each.

Two released layouts are read:

* **InterGPS** (the original release, github.com/lupantech/InterGPS ``data/geometry3k``): ``test/<id>/data.json``
  (``problem_text, choices, answer`` (a letter), ``precise_value, problem_type_graph, problem_type_goal, ...``)
  and ``test/<id>/img_diagram.png``. Scored as a multiple-choice question. The official evaluation
  (``symbolic_solver/test.py``) scores a *value*: it is correct when the gold choice's ``precise_value`` is the
  closest to it (ties count as correct); ``symbolic_solver/sub_acc.py`` reports accuracy per goal type (with
  ``"Other"`` dropped when a problem has another goal) and per diagram type (Rectangle, Rhombus, Parallelogram,
  Trapezoid and Square merged into ``"Quad"``). Here the answer (:func:`~mmrft.rewards.extract.extract_answer` of
  ``final_text``: ``\\boxed{}``, "the answer is ...", or the last line) is read as (1) a letter (``B``, ``(B)``,
  ``**B**``), (2) an option's exact text (spacing ignored: ``4\\sqrt{3}`` = ``4 \\sqrt { 3 }``), (3) an explicit
  letter mention (``(B)``, ``option B``, ``B. 56``; two different letters -> 0), else (4) a value (math-verify, e.g.
  ``6\\sqrt{3}``, ``x = 10.4``; else the last number) mapped to the closest choice by the official rule.
  The prompt follows MathVista's multiple-choice query (github.com/lupantech/MathVista ``evaluation/build_query.py``;
  Geometry3K has no official VLM prompt), hint first as in MathVista's released ``query`` field.
* **HF parquet** ``hiyouga/geometry3k`` (``data/test-*.parquet``: ``images, problem, answer``), free-form answers
  scored with the ``math`` reward (math-verify equivalence). The ``<image>`` token is removed from ``problem``.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import read_parquet
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.math import MAX_ANSWER_CHARS, math_reward
from mmrft.rewards.numeric import parse_number

__all__ = ["Geometry3K", "choice_by_value"]

HINT = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
QUADS = ("Rectangle", "Rhombus", "Parallelogram", "Trapezoid", "Square")
_SPLIT_DIRS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_HF_SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
_WHOLE_LETTER_RE = re.compile(r"[\s(\[{*\"'`]*([A-Za-z])[\s)\]}.:*\"'`]*")  # B, (B), B., **B**, [b]
_LETTER_RES = (  # explicit letter mentions only: point labels (angle B, AB) are not options
    re.compile(r"\(([A-Z])\)"),  # (B)
    re.compile(r"(?i:\b(?:option|choice|answer)\b)\s*(?:(?i:is)\s*)?:?\s*\(?([A-Z])(?![\w'])"),  # option B
    re.compile(r"(?<![\w'\\])([A-Z])[.):](?!\w)"),  # B. 14.2 / B) / B:
)


def _goal_types(goal: list[str]) -> list[str]:
    """Official ``correct_goal_type``: drop "Other" when the problem has another goal."""
    return [g for g in goal if g != "Other"] if "Other" in goal and len(goal) > 1 else list(goal)


def _graph_types(graph: list[str]) -> list[str]:
    """Official ``quad_alias``: the five quadrilateral kinds are reported as "Quad" (deduplicated here)."""
    out: list[str] = []
    for g in ("Quad" if g in QUADS else g for g in graph):
        if g not in out:
            out.append(g)
    return out


def _value(text: str) -> Optional[float]:
    """The numeric value of an answer: math-verify first (``6\\sqrt{3}``, ``x = 10.4``), else the last number."""
    if len(text) > MAX_ANSWER_CHARS:
        return None
    try:
        from mmrft.rewards.math import _own_timeout, _parse_pred  # same parsing as the math reward

        for item in _parse_pred(text, _own_timeout()):
            expr = getattr(item, "rhs", item)  # x = 10.4 -> 10.4
            if getattr(expr, "is_number", False):
                value = complex(expr.evalf())
                if value.imag == 0:
                    return float(value.real)
    except Exception:
        pass
    numbers = parse_number(text)
    return numbers[0] if numbers else None


def choice_by_value(value: float, values: list[float], gold: int) -> int:
    """Index of the choice a value stands for; the gold index when it is among the closest (official rule)."""
    dists = [abs(v - value) for v in values]
    best = min(dists)
    return gold if dists[gold] == best else dists.index(best)


@register_benchmark("geometry3k")
class Geometry3K(Benchmark):
    title = "Geometry3K (test)"
    source = ("InterGPS release: github.com/lupantech/InterGPS (data/geometry3k, Google Drive link in its README), "
              "the test/ folder; or HF hiyouga/geometry3k (data/test-00000-of-00001.parquet)")
    layout = "DIR/test/<id>/data.json + img_diagram.png (InterGPS), or DIR/data/test-*.parquet (hiyouga/geometry3k)"
    categories = ("problem_type_goal", "problem_type_graph")
    deviations = (
        "The official evaluation scores the value produced by the InterGPS solver (closest choice wins) and credits "
        "1/4 for each unsolved problem; we read the model's answer as a named option first (letter or option text), "
        "else as a value mapped to the closest choice by the official rule, and score an unreadable answer 0. "
        "HF layout (hiyouga/geometry3k): free-form answers scored by math-verify equivalence (no official scorer); "
        "it has no problem types (categories 'unknown')."
    )
    default_split = "test"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        split = split or self.default_split
        data_dir = Path(data_dir)
        if split not in _SPLIT_DIRS:
            raise DataError(f"unknown Geometry3K split {split!r}: expected one of {sorted(_SPLIT_DIRS)}")
        if not data_dir.is_dir():
            raise DataError(f"Geometry3K data directory not found: {data_dir}")
        split_dir = data_dir / _SPLIT_DIRS[split]
        if split_dir.is_dir():
            return self._load_intergps(split_dir)
        hf = _HF_SPLITS[split]
        files = sorted(data_dir.glob(f"data/{hf}-*.parquet")) or sorted(data_dir.glob(f"{hf}-*.parquet"))
        if files:
            return self._load_hf(files)
        found = sorted(str(p.relative_to(data_dir)) for p in data_dir.iterdir())
        found += sorted(str(p.relative_to(data_dir)) for p in data_dir.glob("data/*.parquet"))
        raise DataError(f"no Geometry3K '{split}' data in {data_dir}: expected {_SPLIT_DIRS[split]}/<id>/data.json "
                        f"(InterGPS) or data/{hf}-*.parquet (hiyouga/geometry3k); found: {found[:20] or 'nothing'}")

    # ------------------------------------------------------------------ InterGPS layout
    def _load_intergps(self, split_dir: Path) -> list[Sample]:
        dirs = [d for d in split_dir.iterdir() if d.is_dir()]
        dirs.sort(key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name))
        if not dirs:
            raise DataError(f"{split_dir}: no problem folders (<id>/data.json) found")
        return [self._intergps_sample(d) for d in dirs]

    def _intergps_sample(self, folder: Path) -> Sample:
        path = folder / "data.json"
        if not path.is_file():
            raise DataError(f"{folder}: missing data.json (files: {sorted(p.name for p in folder.iterdir())})")
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read {path}: {e}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: expected a JSON object, got {type(row).__name__}")

        def bad(name: str, expected: str) -> DataError:
            return DataError(f"{path}: field '{name}': expected {expected}, got {row.get(name)!r:.80}")

        text, choices, answer = row.get("problem_text"), row.get("choices"), row.get("answer")
        if not isinstance(text, str) or not text.strip():
            raise bad("problem_text", "a non-empty string")
        if not isinstance(choices, list) or len(choices) < 2 or len(choices) > 26:
            raise bad("choices", "a list of 2 to 26 option strings")
        letters = string.ascii_uppercase[: len(choices)]
        if not isinstance(answer, str) or answer.strip() not in letters:
            raise bad("answer", f"one of {list(letters)}")
        values = row.get("precise_value")
        if values is not None and (not isinstance(values, list) or len(values) != len(choices)):
            raise bad("precise_value", f"a list of {len(choices)} numbers (one per choice)")
        goal, graph = row.get("problem_type_goal") or [], row.get("problem_type_graph") or []
        if not isinstance(goal, list) or not isinstance(graph, list):
            raise DataError(f"{path}: fields 'problem_type_goal'/'problem_type_graph': expected lists")
        options = [str(c) for c in choices]
        lines = [HINT, f"Question: {text.strip()}", "Choices:"]
        lines += [f"({letter}) {option}" for letter, option in zip(letters, options)]
        metadata = {
            "categories": {"problem_type_goal": _goal_types([str(g) for g in goal]) or ["unknown"],
                           "problem_type_graph": _graph_types([str(g) for g in graph]) or ["unknown"]},
            "layout": "intergps", "options": options, "precise_value": values,
        }
        return Sample(id=str(row.get("id", folder.name)), prompt="\n".join(lines), answer=answer.strip(),
                      images=[str((folder / "img_diagram.png").resolve())], task=self.name, metadata=metadata,
                      source=str(path))

    # ------------------------------------------------------------------ HF parquet layout
    def _load_hf(self, files: list[Path]) -> list[Sample]:
        samples: list[Sample] = []
        for path in files:
            rows = read_parquet(path)
            for i, row in enumerate(rows):
                samples.append(self._hf_sample(row, path, len(samples), i))
        return samples

    def _hf_sample(self, row: dict, path: Path, index: int, i: int) -> Sample:
        where = f"{path}:row {i}"
        problem, answer, images = row.get("problem"), row.get("answer"), row.get("images")
        if not isinstance(problem, str) or not problem.replace("<image>", "").strip():
            raise DataError(f"{where}: field 'problem': expected a non-empty string, got {problem!r:.80}")
        if not isinstance(answer, str) or not answer.strip():
            raise DataError(f"{where}: field 'answer': expected a non-empty string, got {answer!r:.80}")
        if not isinstance(images, list):
            raise DataError(f"{where}: field 'images': expected a list of images, got {type(images).__name__}")
        refs: list[Any] = []
        for im in images:
            if isinstance(im, dict) and im.get("bytes"):
                refs.append({"bytes": bytes(im["bytes"]), "path": im.get("path")})
            elif isinstance(im, dict) and isinstance(im.get("path"), str) and im["path"]:
                refs.append(str((path.parent / im["path"]).resolve()))
            else:
                raise DataError(f"{where}: field 'images': expected {{bytes, path}} images, got {im!r:.80}")
        metadata = {"categories": {"problem_type_goal": "unknown", "problem_type_graph": "unknown"}, "layout": "hf"}
        return Sample(id=str(index), prompt=problem.replace("<image>", "").strip(), answer=answer.strip(),
                      images=refs, task=self.name, metadata=metadata, source=where)

    # ------------------------------------------------------------------ scoring
    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            text = final_text(completion if isinstance(completion, str) else "")
            pred = extract_answer(text)
            if sample.metadata.get("layout") == "hf":
                if pred is None:
                    return Judgement(None, 0.0)
                return Judgement(pred, math_reward(text, {"answer": sample.answer}))
            letter = self._read_choice(pred, sample) if pred is not None else None
            return Judgement(letter, 1.0 if letter is not None and letter == sample.answer else 0.0)
        except Exception:
            return Judgement(None, 0.0)

    @staticmethod
    def _read_choice(pred: str, sample: Sample) -> Optional[str]:
        """The option an extracted answer stands for, or ``None`` (see the module docstring)."""
        options: list[str] = list(sample.metadata.get("options") or [])
        letters = string.ascii_uppercase[: len(options)]
        s = pred.replace("$", "").strip()
        whole = _WHOLE_LETTER_RE.fullmatch(s)
        if whole:
            return whole.group(1).upper() if whole.group(1).upper() in letters else None
        squeezed = "".join(s.split())  # "2\sqrt{3}" names the option "2 \sqrt { 3 }"
        exact = [k for k, v in zip(letters, options) if "".join(v.replace("$", "").split()) == squeezed]
        if len(exact) == 1:
            return exact[0]
        named = {m.group(1) for rx in _LETTER_RES for m in rx.finditer(s)} & set(letters)
        if len(named) == 1:
            return named.pop()
        if named:
            return None  # two different options named
        values = sample.metadata.get("precise_value")
        if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            return None
        value = _value(s)
        if value is None:
            return None
        return letters[choice_by_value(value, [float(v) for v in values], letters.index(str(sample.answer)))]
