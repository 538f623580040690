"""CLEVR and Super-CLEVR counting: the counting questions of the released question files, exact integer match.

Official files followed:

* CLEVR v1.0 release (https://cs.stanford.edu/people/jcjohns/clevr/, ``CLEVR_v1.0.zip``):
  ``questions/CLEVR_<split>_questions.json`` = ``{"info": ..., "questions": [{image_index, image_filename,
  question_index, split, question, answer, question_family_index, program}]}``; programs are lists of
  ``{"function", "inputs", "value_inputs"}`` (the format read by facebookresearch/clevr-iep ``iep/programs.py``
  ``function_to_str``); images ``images/<split>/CLEVR_<split>_NNNNNN.png``.
* Super-CLEVR (RyanWW/Super-CLEVR on Hugging Face, Anciukevicius/Super-CLEVR README): ``superCLEVR_questions_30k.json``
  in the same envelope, programs written by the clevr-dataset-gen generator as ``{"type", "inputs",
  "side_inputs"}``, integer / boolean answers, images ``images/superCLEVR_new_NNNNNN.png`` (``images.zip``).
  README: scenes 0–19999 are training, 20000–24999 validation, 25000–29999 test.
* Scoring as in R1-V (Deep-Agent/R1-V ``src/eval/test_qwen2vl_counting_superclevr.py``, read in the fork
  linkangheng/R1-V): prompt ``"{Question} First output the thinking process in <think> </think> and final answer
  (number) in <answer> </answer> tags."``, answer ``re.search(r'<answer>\\s*(\\d+)\\s*</answer>')``, correct iff
  ``int(answer) == ground_truth``.

Where we differ (see ``deviations``): the format sentence is mmrft's prompt format's job (``--format r1`` appends
its own instruction), so ``Sample.prompt`` is the bare question; the count is read with
:func:`mmrft.rewards.numeric.parse_count` on :func:`final_text` (last integer, digits or English words) instead of
digits-only inside closed answer tags, so plain-format models can be scored too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.rewards.extract import answer_block
from mmrft.rewards.numeric import parse_count

__all__ = ["ClevrCount", "SuperClevrCount", "reasoning_truncated"]

_DEVIATIONS = (
    "R1-V reads only digits inside a closed <answer>…</answer>; we read the last integer (digits or an English "
    "number word) of final_text (the <answer> block, else the text after </think>, else the whole output) with "
    "mmrft.rewards.numeric.parse_count, so plain-format outputs ('There are 3 cubes.') are scored too; an output "
    "cut off inside an unclosed <think> scores 0. R1-V's "
    "format sentence is not in the prompt: mmrft's prompt format adds its own. Exact integer match as in R1-V."
)


def _read_questions(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the question file: {e}") from None
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list):
        raise DataError(f"{path}: expected a JSON object with a 'questions' list (the CLEVR question file layout)")
    return questions


def _last_function(program: Any, where: str) -> str:
    """Name of the program's last step: CLEVR v1.0 writes ``function``, the generator (Super-CLEVR) ``type``."""
    if not isinstance(program, list) or not program or not isinstance(program[-1], dict):
        raise DataError(f"{where}: field 'program': expected a non-empty list of steps, got {type(program).__name__}")
    step = program[-1]
    name = step.get("function", step.get("type"))
    if not isinstance(name, str):
        raise DataError(f"{where}: field 'program': last step has no 'function' / 'type' name")
    return name


def _gold_count(answer: Any, where: str) -> int:
    if isinstance(answer, int) and not isinstance(answer, bool):
        return answer
    if isinstance(answer, str) and answer.strip().isdigit():
        return int(answer.strip())
    raise DataError(f"{where}: field 'answer': a counting question needs an integer answer, got {answer!r}")


def reasoning_truncated(completion: str) -> bool:
    """An opened ``<think>`` never closed and no ``<answer>``: generation stopped mid-reasoning, nothing to read.

    (:func:`final_text` would return the whole text and its numbers would be read as the answer.)
    """
    low = completion.lower()
    return "<think>" in low and "</think>" not in low and answer_block(completion) is None


def _count_bucket(n: int) -> str:
    return str(n) if n < 10 else "10+"


class _CountingBase(Benchmark):
    """Counting questions of a CLEVR-format question file (program ending in ``count``)."""

    categories = ("family", "count")
    default_split: ClassVar[Optional[str]] = None

    def _question_file(self, data_dir: Path, split: str) -> Path:
        raise NotImplementedError

    def _image_path(self, data_dir: Path, split: str, filename: str) -> Path:
        raise NotImplementedError

    def _keep(self, q: dict, split: str, where: str) -> bool:
        return True

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        data_dir = Path(data_dir)
        split = split or self.default_split or ""
        path = self._question_file(data_dir, split)
        samples: list[Sample] = []
        seen: set[str] = set()
        for i, q in enumerate(_read_questions(path)):
            where = f"{path}: question {i}"
            if not isinstance(q, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(q).__name__}")
            for key in ("question", "answer", "image_filename", "program"):
                if key not in q:
                    raise DataError(f"{where}: missing field '{key}' (present fields: {sorted(q)})")
            if _last_function(q["program"], where) != "count" or not self._keep(q, split, where):
                continue
            text, image = q["question"], q["image_filename"]
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: field 'question': expected a non-empty string")
            if not isinstance(image, str) or not image:
                raise DataError(f"{where}: field 'image_filename': expected a file name")
            gold = _gold_count(q["answer"], where)
            qid = str(q.get("question_index", i))
            if qid in seen:
                raise DataError(f"{where}: duplicate question_index {qid}")
            seen.add(qid)
            family = q.get("question_family_index")
            template = q.get("template_filename")
            family_name = "unknown" if family is None else str(family)
            if isinstance(template, str) and template:
                family_name = f"{Path(template).stem}:{family_name}"
            samples.append(Sample(
                id=qid,
                prompt=text.strip(),
                answer=gold,
                images=[os.path.abspath(self._image_path(data_dir, split, image))],
                task=self.name,
                metadata={
                    "categories": {"family": family_name, "count": _count_bucket(gold)},
                    "image_index": q.get("image_index"),
                    "image_filename": image,
                },
                source=where,
            ))
        if not samples:
            raise DataError(f"{path}: no counting questions (program ending in 'count') in split {split!r}")
        return samples

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            if reasoning_truncated(completion):
                return Judgement(None, 0.0)
            pred = parse_count(final_text(completion))
            if pred is None:
                return Judgement(None, 0.0)
            return Judgement(str(pred), 1.0 if pred == int(sample.answer) else 0.0)
        except Exception:
            return Judgement(None, 0.0)


def _listing(folder: Path) -> str:
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return f"{folder} does not exist"
    return f"found in {folder}: {', '.join(names) or '(nothing)'}"


@register_benchmark("clevr_count")
class ClevrCount(_CountingBase):
    """CLEVR v1.0 counting questions (val by default: the test split has no released answers)."""

    title = "CLEVR v1.0 counting (val)"
    source = ("https://dl.fbaipublicfiles.com/clevr/CLEVR_v1.0.zip (CLEVR v1.0, Johnson et al. 2017): "
              "questions/CLEVR_val_questions.json and images/val/")
    layout = "DIR/questions/CLEVR_<split>_questions.json, DIR/images/<split>/CLEVR_<split>_NNNNNN.png"
    deviations = _DEVIATIONS
    default_split = "val"

    def _question_file(self, data_dir: Path, split: str) -> Path:
        if split == "test":
            raise DataError("CLEVR test questions have no released answers: use split 'val' (or 'train')")
        path = data_dir / "questions" / f"CLEVR_{split}_questions.json"
        if not path.is_file():
            raise DataError(f"missing question file {path} for split {split!r}; {_listing(data_dir / 'questions')}")
        return path

    def _image_path(self, data_dir: Path, split: str, filename: str) -> Path:
        return data_dir / "images" / split / filename


_SUPERCLEVR_SPLITS = {"train": (0, 20000), "val": (20000, 25000), "test": (25000, 30000), "all": (0, 1 << 62)}


@register_benchmark("superclevr_count")
class SuperClevrCount(_CountingBase):
    """Super-CLEVR counting questions; splits by scene index as in the Super-CLEVR README."""

    title = "Super-CLEVR counting (test scenes 25000-29999)"
    source = ("https://huggingface.co/datasets/RyanWW/Super-CLEVR: superCLEVR_questions_30k.json and images.zip "
              "(unzipped to images/)")
    layout = "DIR/superCLEVR_questions_30k.json, DIR/images/superCLEVR_new_NNNNNN.png"
    deviations = _DEVIATIONS + (
        " Split = scene index range from the Super-CLEVR README (train <20000, val 20000-24999, test >=25000, "
        "or 'all'); R1-V itself scores a 200-question sample of the counting questions."
    )
    default_split = "test"

    def _question_file(self, data_dir: Path, split: str) -> Path:
        if split not in _SUPERCLEVR_SPLITS:
            raise DataError(f"unknown Super-CLEVR split {split!r}; expected one of {sorted(_SUPERCLEVR_SPLITS)}")
        path = data_dir / "superCLEVR_questions_30k.json"
        if path.is_file():
            return path
        others = sorted(data_dir.glob("superCLEVR_questions*.json"))
        if len(others) == 1:  # the NoRedundant / AllRedundant variants share the layout
            return others[0]
        raise DataError(f"missing question file {path}; {_listing(data_dir)}")

    def _image_path(self, data_dir: Path, split: str, filename: str) -> Path:
        return data_dir / "images" / filename

    def _keep(self, q: dict, split: str, where: str) -> bool:
        index = q.get("image_index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise DataError(f"{where}: field 'image_index': expected an int (the split is chosen by scene index)")
        lo, hi = _SUPERCLEVR_SPLITS[split]
        return lo <= index < hi
