"""V* Bench (test): 191 multiple-choice questions on high-resolution images, two sub-tasks.

``direct_attributes`` (115 questions, 4 options: the colour / material / ... of a small object) and
``relative_position`` (76 questions, 2 options: is X left or right of Y). Wu & Xie, "V*: Guided Visual Search as a
Core Mechanism in Multimodal LLMs", 2023.

What was read, and what it says:

* Files, HF dataset ``craigwu/vstar_bench`` (main): ``test_questions.jsonl`` (added by the dataset PR #3
  "Uploading ground truth labels") plus one folder per sub-task (``direct_attributes/``, ``relative_position/``;
  the folders ``GPT4V-hard/`` and ``OCR/`` are not among the 191 questions). A question row is LLaVA's question-file
  format with a label: ``{"question_id", "image": "direct_attributes/sa_4690.jpg", "text", "category", "label"}``,
  where ``text`` is the question, one ``(A) option`` line per option and the line ``Answer with the option's letter
  from the given choices directly.``, and ``label`` is the letter. Each image ``<folder>/<name>.jpg`` is paired with
  ``<folder>/<name>.json``: ``{"target_object": [names], "bbox": [[x, y, w, h], ...] (pixels), "question",
  "options": [texts, the correct one first]}`` (github.com/penghao-wu/vstar ``README.md``, "Benchmark"). The row
  layout was checked against public code that reads the file: xtong-zhang/Chain-of-Focus
  ``eval/vstar/vllm_inference.py`` and ``eval/vstar/judge_result.py`` (``image``, ``text``, ``label``,
  ``category``; options parsed from the ``(X) text`` lines), and the first row quoted verbatim in several READMEs
  (``sa_4690``: "What is the material of the glove?" (A) rubber ... label A; its annotation ``target_object
  ["glove"]``, ``bbox [[564, 142, 155, 157]]``). The files themselves could not be downloaded here.
* Official evaluation, penghao-wu/vstar ``vstar_bench_eval.py``: for each sub-task folder, every image and its
  annotation JSON; the VQA LLM (LLaVA-style) scores each annotation option by its language-model loss after the
  question, ``option_chosen = argmin(loss)``, ``correct = option_chosen == 0``; printed per sub-task
  (``np.mean(per_type_acc[test_type])``) and overall over all 191 (``np.mean(all_acc)``, not the mean of the two
  sub-task numbers).
* Generative evaluations: Visual-Agent/DeepEyes ``eval/eval_vstar.py`` + ``eval/judge_result.py`` (prompt built
  from the annotation JSON with the correct option always listed as A; rules for a bare letter, else a Qwen2.5-72B
  judge); Chain-of-Focus (above: ``"Question: " + text`` + its tool instruction; the same rules + LLM judge);
  EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/vstar_bench/utils.py`` (reformats the options, regex letter
  extraction); open-compass/VLMEvalKit ``vlmeval/dataset/image_mcq.py`` ``VStarBench`` (its own TSV re-packaging,
  ``xjtupanda/VStar_Bench``, the generic MCQ prompt and the rule-based ``can_infer`` matching).

This adapter:

* prompt: the released ``text`` verbatim (question, option lines, "Answer with the option's letter ..."), the
  prompt the labelled question file was written for.
* scoring: VLMEvalKit's ``can_infer`` (ported in :mod:`mmrft.eval.benchmarks.mmstar`): exactly one option letter
  among the punctuation-split tokens, else exactly one option text contained in the answer (case-insensitive), read
  from :func:`~mmrft.eval.benchmarks.base.final_text`; score 1 iff the letter equals ``label``. The port is
  VLMEvalKit's version at 18fc37a (identical to the copy bundled in the HR-Bench repo); VLMEvalKit's current
  ``can_infer_option`` (e8e78f0) also requires the single letter to be among the last five tokens, then tries an
  "answer is X" pattern, which reads a few chatty answers differently ("C is right because ..." is C here).
* categories: ``category`` (the sub-task); overall accuracy is the mean over all questions, as the official script
  reports it.
* metadata: ``options`` (letter -> text), ``question`` (the text before the options) and, when the image's
  annotation JSON is present, ``annotation = {"target_object", "bbox"}`` (boxes ``[x, y, w, h]`` in pixels of the
  original image), e.g. for analysing zoom-in tool calls.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, read_json, register_benchmark
from mmrft.eval.benchmarks.mmstar import can_infer

__all__ = ["VStarBench", "parse_option_lines"]

QUESTIONS_FILE = "test_questions.jsonl"
SUBTASKS = ("direct_attributes", "relative_position")
REQUIRED = ("question_id", "image", "text", "category", "label")
_OPTION_LINE = re.compile(r"^\(([A-Z])\)[ \t]*(.*?)[ \t]*$", re.M)


def parse_option_lines(text: str) -> tuple[str, dict[str, str]]:
    """``"Q?\\n(A) x\\n(B) y\\nAnswer ..."`` -> ``("Q?", {"A": "x", "B": "y"})``; ``(text, {})`` without option lines.

    Option lines are lines starting with ``(X)``; the question is the text before the first of them.
    """
    matches = list(_OPTION_LINE.finditer(text))
    if not matches:
        return text.strip(), {}
    return text[:matches[0].start()].strip(), {m.group(1): m.group(2) for m in matches}


def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()) if folder.is_dir() else []
    return f"files in {folder}: {names[:20] or 'none'}"


@register_benchmark("vstar")
class VStarBench(Benchmark):
    title = "V* Bench (test)"
    source = "https://huggingface.co/datasets/craigwu/vstar_bench: test_questions.jsonl + the sub-task folders"
    layout = "DIR/test_questions.jsonl, DIR/direct_attributes/*.jpg|json, DIR/relative_position/*.jpg|json"
    categories = ("category",)
    deviations = (
        "The official script (penghao-wu/vstar vstar_bench_eval.py) does not generate: it ranks the options by the "
        "LLaVA model's likelihood and counts the first (correct) option. A generated answer is read instead with "
        "VLMEvalKit's rule-based can_infer (one option letter, else one option text; VLMEvalKit scores V* this way "
        "in its exact_matching mode), applied to final_text (the <answer> block, or the text after </think>); "
        "answers the rules cannot map score 0, where DeepEyes / Chain-of-Focus ask an LLM judge. The prompt is the "
        "released test_questions.jsonl text, whose option order varies the correct letter, not DeepEyes' prompt "
        "rebuilt from the annotation JSON, which always lists the correct option first."
    )
    default_split = "test"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        split = split or self.default_split
        if split != "test":
            raise DataError(f"V* Bench has a single split 'test' ({QUESTIONS_FILE}), got split {split!r}")
        data_dir = Path(data_dir)
        path = data_dir / QUESTIONS_FILE
        if not path.is_file():
            hint = (" (a snapshot older than the dataset's PR #3 has the sub-task folders but not the labelled "
                    "question file: download the current main)") if (data_dir / SUBTASKS[0]).is_dir() else ""
            raise DataError(f"V* Bench question file not found: {path}{hint}; {_listing(data_dir)}")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read: {e}") from None
        samples: list[Sample] = []
        seen: dict[str, int] = {}
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:line {n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON: {e}") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            sample = self._sample(row, data_dir, where)
            if sample.id in seen:
                raise DataError(f"{where}: duplicate question_id {sample.id!r} (first on line {seen[sample.id]})")
            seen[sample.id] = n
            samples.append(sample)
        if not samples:
            raise DataError(f"{path}: no questions")
        return samples

    def _sample(self, row: dict, data_dir: Path, where: str) -> Sample:
        for name in REQUIRED:
            if row.get(name) is None or (isinstance(row[name], str) and not row[name].strip()):
                present = sorted(k for k, v in row.items() if v is not None)
                raise DataError(f"{where}: missing field '{name}' (present: {present})")
        qid = row["question_id"]
        if isinstance(qid, bool) or not isinstance(qid, (int, str)):
            raise DataError(f"{where}: field 'question_id': expected an integer or string, got {qid!r}")
        text, image, category = row["text"], row["image"], row["category"]
        for name, value in (("text", text), ("image", image), ("category", category)):
            if not isinstance(value, str):
                raise DataError(f"{where}: field '{name}': expected a string, got {type(value).__name__}")
        rel = PurePosixPath(image)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"{where}: field 'image': expected a path relative to {data_dir}, got {image!r}")
        question, options = parse_option_lines(text)
        if len(options) < 2 or list(options) != [chr(ord("A") + i) for i in range(len(options))]:
            raise DataError(f"{where}: field 'text': expected option lines '(A) ...', '(B) ...' (consecutive letters "
                            f"from A), found {list(options) or 'none'}")
        label = str(row["label"]).strip()
        if label not in options:
            raise DataError(f"{where}: field 'label': expected one of {list(options)}, got {row['label']!r}")
        metadata: dict[str, Any] = {"categories": {"category": category}, "options": options, "question": question}
        annotation = self._annotation(data_dir / rel.with_suffix(".json"))
        if annotation is not None:
            metadata["annotation"] = annotation
        return Sample(id=str(qid), prompt=text, answer=label, images=[str((data_dir / rel).resolve())],
                      task=self.name, metadata=metadata, source=where)

    @staticmethod
    def _annotation(path: Path) -> Optional[dict]:
        """``{"target_object", "bbox"}`` of the image's annotation JSON, None when the file is absent."""
        if not path.is_file():
            return None
        ann = read_json(path)
        if not isinstance(ann, dict):
            raise DataError(f"{path}: expected a JSON object (target_object, bbox, question, options), "
                            f"got {type(ann).__name__}")
        targets, boxes = ann.get("target_object"), ann.get("bbox")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise DataError(f"{path}: field 'target_object': expected a list of names, got {targets!r:.80}")
        if not isinstance(boxes, list) or not all(
                isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            for v in b) for b in boxes):
            raise DataError(f"{path}: field 'bbox': expected a list of [x, y, w, h] boxes, got {boxes!r:.80}")
        return {"target_object": list(targets), "bbox": [list(b) for b in boxes]}

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            text = final_text(completion if isinstance(completion, str) else "")
            choices = dict(sample.metadata.get("options") or {})
            pred = can_infer(text, choices)
            letter = pred if isinstance(pred, str) and pred in choices else None  # 'Z' / False: no option
            return Judgement(letter, 1.0 if letter is not None and letter == str(sample.answer) else 0.0)
        except Exception:
            return Judgement(None, 0.0)
