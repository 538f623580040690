"""ChartQA (test): human-written and augmented questions over chart images, relaxed accuracy.

Official files followed:

* Data: vis-nlp/ChartQA, ``ChartQA Dataset/<split>/<split>_human.json`` and ``<split>_augmented.json`` (JSON lists of
  ``{"imgname", "query", "label"}``, labels are strings), images ``ChartQA Dataset/<split>/png/<imgname>``.
* Metric: google-research/pix2struct ``pix2struct/metrics.py`` ``relaxed_correctness`` (also QwenLM/Qwen-VL
  ``eval_mm/evaluate_vqa.py`` and EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/chartqa/utils.py``): both strings
  stripped; if the prediction parses with ``float()`` (a trailing ``%`` divides by 100) and the target parses to a
  non-zero float, correct iff ``|pred - target| / |target| <= 0.05``; otherwise case-insensitive exact string match.
  Reported per subset (human / augmented) and overall, as lmms-eval does.
* Prompt: lmms-eval ``chartqa.yaml`` default ``"{query}\\nAnswer the question using a single word or phrase."``.

Not reused: :func:`mmrft.rewards.chart.relaxed_match`, which is more lenient than the official rule (it reads the
last number in free text, accepts "45%" for 45 and thousands separators, normalises quotes/periods).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.rewards.extract import extract_answer

__all__ = ["ChartQA", "relaxed_correctness"]

MAX_RELATIVE_CHANGE = 0.05
POST_PROMPT = "\nAnswer the question using a single word or phrase."
SUBSETS = ("human", "augmented")
SPLITS = ("train", "val", "test")


def _to_float(text: str) -> Optional[float]:
    """pix2struct ``_to_float``: ``float(text)``, a trailing ``%`` divides by 100, else None."""
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_correctness(target: str, prediction: str, max_relative_change: float = MAX_RELATIVE_CHANGE) -> bool:
    """The official ChartQA relaxed correctness (pix2struct), on stripped strings as in Qwen-VL's evaluate_vqa."""
    target, prediction = target.strip(), prediction.strip()
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        return abs(prediction_float - target_float) / abs(target_float) <= max_relative_change
    return prediction.lower() == target.lower()


def _canonical(pred: str) -> str:
    """Majority-vote key consistent with the rule: numbers by value ("14" == "14.0"), text lower-cased."""
    value = _to_float(pred)
    return format(value, ".15g") if value is not None else pred.lower()


def _resolve_root(data_dir: Path, split: str) -> Path:
    for root in (data_dir, data_dir / "ChartQA Dataset"):
        if (root / split).is_dir():
            return root / split
    return data_dir / split


@register_benchmark("chartqa")
class ChartQA(Benchmark):
    """ChartQA; split "test" (both subsets) or "test_human" / "test_augmented" (also train / val)."""

    title = "ChartQA (test)"
    source = ("https://github.com/vis-nlp/ChartQA ('ChartQA Dataset' folder, or the Google Drive zip linked in its "
              "README): test/test_human.json, test/test_augmented.json, test/png/")
    layout = ("DIR/test/test_human.json, DIR/test/test_augmented.json, DIR/test/png/<imgname> "
              "(DIR may also hold 'ChartQA Dataset/test/...')")
    categories = ("subset",)
    deviations = (
        "Official pix2struct relaxed_correctness (5% relative tolerance when both parse with float(), '%' = /100, "
        "else case-insensitive exact match) applied to an extracted answer, where the official scorer compares "
        "the whole (stripped) output: final_text (the <answer> block / text after </think>), then "
        "mmrft.rewards.extract.extract_answer (last \\boxed{}, 'answer is …' phrase, else the last line; "
        "surrounding ** and trailing periods removed). No number parsing beyond float(): '1,234', '$12' or "
        "'45%' for gold 45 are wrong, as officially."
    )
    default_split = "test"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        data_dir = Path(data_dir)
        split = split or self.default_split or "test"
        base, _, only = split.partition("_")
        if base not in SPLITS or (only and only not in SUBSETS):
            raise DataError(f"unknown ChartQA split {split!r}; expected one of {', '.join(SPLITS)}, "
                            f"optionally with _human / _augmented (e.g. test_human)")
        folder = _resolve_root(data_dir, base)
        samples: list[Sample] = []
        for subset in (only,) if only else SUBSETS:
            path = folder / f"{base}_{subset}.json"
            if not path.is_file():
                try:
                    found = ", ".join(sorted(p.name for p in folder.iterdir())) or "(nothing)"
                except OSError:
                    found = f"{folder} does not exist"
                raise DataError(f"missing {path} for split {split!r}; found: {found}")
            samples.extend(self._load_file(path, subset, folder / "png"))
        return samples

    def _load_file(self, path: Path, subset: str, png: Path) -> list[Sample]:
        try:
            with open(path, encoding="utf-8") as f:
                rows = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: cannot read: {e}") from None
        if isinstance(rows, dict) and isinstance(rows.get("data"), list):
            rows = rows["data"]  # lmms-eval's upload script reads a {"data": [...]} wrapper
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of {{imgname, query, label}} rows")
        out: list[Sample] = []
        for i, row in enumerate(rows):
            where = f"{path}: row {i}"
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in ("imgname", "query", "label"):
                if key not in row:
                    raise DataError(f"{where}: missing field '{key}' (present fields: {sorted(row)})")
            img, query, label = row["imgname"], row["query"], _label(row["label"], where)
            if not isinstance(img, str) or not img:
                raise DataError(f"{where}: field 'imgname': expected a file name")
            if not isinstance(query, str) or not query.strip():
                raise DataError(f"{where}: field 'query': expected a non-empty string")
            out.append(Sample(
                id=f"{subset}_{i}",
                prompt=query + POST_PROMPT,
                answer=label,
                images=[os.path.abspath(png / img)],
                task=self.name,
                metadata={"categories": {"subset": subset}, "imgname": img},
                source=where,
            ))
        return out

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            pred = extract_answer(final_text(completion))
            if pred is None or not pred.strip():
                return Judgement(None, 0.0)
            pred = pred.strip()
            ok = relaxed_correctness(str(sample.answer), pred)
            return Judgement(_canonical(pred), 1.0 if ok else 0.0)
        except Exception:
            return Judgement(None, 0.0)


def _label(value: Any, where: str) -> str:
    if isinstance(value, list) and len(value) == 1:  # the HF mirror HuggingFaceM4/ChartQA wraps labels in lists
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: field 'label': expected a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise DataError(f"{where}: field 'label': empty")
    return text
