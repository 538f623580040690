"""HR-Bench 4K and 8K: multiple-choice perception questions on 4K / 8K images, asked under cyclic option orders.

Wang et al., "Divide, Conquer and Combine: A Training-Free Framework for High-Resolution Image Perception in
Multimodal Large Language Models", 2024. 200 images per resolution (the 4K images are crops of the 8K ones around
the annotated objects), 100 questions per task: FSP (fine-grained single-instance perception: attributes, OCR,
visual prompting) and FCP (fine-grained cross-instance perception: maps, charts, spatial relations); options A-D.
Registered as ``hrbench4k`` and ``hrbench8k``.

What was read, and what it says:

* Files, HF dataset ``DreamMr/HR-Bench`` (main): ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv`` (the files VLMEvalKit
  downloads: ``HRBenchDataset.DATASET_URL``) and, with the same columns, ``hr_bench_4k.parquet`` /
  ``hr_bench_8k.parquet`` (the dataset's ``hrbench_version_split`` config, splits ``hrbench_4k`` / ``hrbench_8k``,
  read by lmms-eval). Columns ``index, question, A, B, C, D, answer, category, cycle_category, image``: ``image`` is
  the base64-encoded image (a string in both files: lmms-eval and other readers of the parquet b64-decode it),
  ``answer`` the letter, ``category`` the task, ``cycle_category`` the option order the row belongs to (by its name
  and the per-cycle averaging below, each question is asked once per cyclic order of its options; the files
  themselves could not be inspected here). The category values are
  ``single`` (FSP) and ``cross`` (FCP): lmms-eval keys its per-task metrics ``single`` / ``cross`` by
  ``doc["category"]`` (EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/hrbench/{hrbench4k.yaml,utils.py}``). The
  concrete ``cycle_category`` strings appeared in no source that could be read here; they are used as opaque group
  labels. VLMEvalKit's TSV convention that an ``image`` field of at most 64 characters names the ``index`` of the row
  holding the image (``vlmeval/dataset/image_base.py``) is honoured.
* Prompt, DreamMr/HR-Bench ``hrbench/vlmeval/dataset/image_mcq.py`` ``ImageMCQDataset.build_prompt`` (identical in
  open-compass/VLMEvalKit ``vlmeval/dataset/image_mcq.py``): ``[Hint: {hint}\\n]Question: {question}\\nOptions:\\n``,
  one ``{letter}. {text}\\n`` per non-empty option column, then ``Please select the correct answer from the options
  above. \\n`` (with the space before the newline).
* Scoring. The HR-Bench repo's own ``HRBenchDataset.evaluate`` (``hrbench/vlmeval/dataset/image_mcq.py`` +
  ``utils/hrbench.py``) asks an LLM (``llm_path``, served with lmdeploy) whether the prediction answers the question
  given the correct option, and reads yes/no. VLMEvalKit's ``HRBenchDataset.evaluate`` (the HR-Bench README: "HRBench
  has been supported in the VLMEvalKit") maps the prediction to an option with ``mcq_vanilla_eval``: the rule-based
  ``can_infer`` first (``vlmeval/utils/matching_util.py``; the copy bundled in the HR-Bench repo is the version
  ported in :mod:`mmrft.eval.benchmarks.mmstar`; VLMEvalKit's current one also wants the letter among the last five
  tokens), a ChatGPT judge only when the rules find nothing (no judge: ``exact_matching``, unmatched = wrong),
  ``hit = option == answer``.
* Aggregate, both repos (``report_acc_hrbench`` / the inline loop in ``evaluate``): rows are grouped by
  ``cycle_category``; in each group the accuracy over all rows (``all``) and per ``category``; the reported number
  for each of ``all`` / FSP / FCP is the mean of the per-cycle accuracies ("Average" row). :func:`hrbench_report`
  computes it, quirk included: a category's per-cycle sum is divided by the number of all cycles, even when the
  category is absent from some cycle. When every cycle holds the same questions (as the released files should),
  this equals the plain mean per category and overall, which the runner reports.

This adapter: the prompt above; ``can_infer`` on :func:`~mmrft.eval.benchmarks.base.final_text`; categories
``category`` (``single`` / ``cross`` reported as ``FSP`` / ``FCP``; any other value as it is) and
``cycle_category``; metadata ``options``, ``question``, ``hrbench_category`` (the raw value).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import sys
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, read_parquet, register_benchmark
from mmrft.eval.benchmarks.mmstar import can_infer

__all__ = ["HRBench", "HRBench4K", "HRBench8K", "build_prompt", "hrbench_report"]

REQUIRED = ("index", "question", "answer", "category", "cycle_category", "image")
CATEGORY_NAMES = {"single": "FSP", "cross": "FCP"}
PROMPT_TAIL = "Please select the correct answer from the options above. \n"
IMAGE_REF_MAX = 64  # VLMEvalKit: an image field this short names another row's index
LETTERS = tuple(chr(ord("A") + i) for i in range(26))


def build_prompt(question: str, options: dict[str, str], hint: Optional[str] = None) -> str:
    """VLMEvalKit's ``ImageMCQDataset.build_prompt`` text (the HR-Bench prompt)."""
    prompt = f"Hint: {hint}\n" if hint is not None else ""
    prompt += f"Question: {question}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items()) + PROMPT_TAIL
    return prompt


def hrbench_report(samples: Iterable[dict]) -> dict[str, dict]:
    """The official HR-Bench aggregate (VLMEvalKit ``report_acc_hrbench``).

    `samples`: rows ``{"score": float, "categories": {"category": ..., "cycle_category": ...}}`` (the per-sample rows
    of ``results.json``). Returns ``{"cycles": {cycle: {"all": acc, <category>: acc, ...}}, "average": {"all": ...,
    <category>: ...}}``: per cycle (in sorted order, as pandas ``groupby``) the mean score over its rows and per
    category; ``average[k]`` is the sum of the per-cycle values of ``k`` divided by the number of cycles (all cycles,
    also for a category missing from some of them, as the official loop does).
    """
    groups: dict[str, list[tuple[str, float]]] = {}
    for s in samples:
        cats = s.get("categories") or {}
        groups.setdefault(str(cats.get("cycle_category")), []).append((str(cats.get("category")), float(s["score"])))
    cycles: dict[str, dict[str, float]] = {}
    sums: dict[str, float] = {}
    for cycle in sorted(groups):
        rows = groups[cycle]
        table = {"all": sum(v for _, v in rows) / len(rows)}
        for cat in sorted({c for c, _ in rows}):
            vals = [v for c, v in rows if c == cat]
            table[cat] = sum(vals) / len(vals)
        cycles[cycle] = table
        for key, val in table.items():
            sums[key] = sums.get(key, 0.0) + val
    return {"cycles": cycles, "average": {k: v / len(cycles) for k, v in sums.items()}}


# ----------------------------------------------------------------------------- reading the released tables
def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Rows of the parquet file; the image column is read a few rows at a time (the 8K file is GBs of base64)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
    except Exception as e:  # pyarrow raises several types for a truncated / non-parquet file
        raise DataError(f"{path}: cannot read parquet file: {e}") from None
    _check_columns(path, names)
    meta = read_parquet(path, columns=[c for c in names if c != "image"])
    i = 0
    try:
        batches = pf.iter_batches(columns=["image"], batch_size=16)
        for batch in batches:
            for image in batch.column(0).to_pylist():
                yield i, {**meta[i], "image": image}
                i += 1
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: cannot read parquet column 'image' at row {i}: {e}") from None


def _tsv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Rows of the TSV file (VLMEvalKit layout: a header line, tab-separated, empty field = missing)."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2 ** 31 - 1))  # one field is a whole base64 image
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            if not header:
                raise DataError(f"{path}: empty file (expected a header line with the columns {list(REQUIRED)})")
            _check_columns(path, header)
            for i, rec in enumerate(reader):
                if len(rec) != len(header):
                    raise DataError(f"{path}:row {i} (line {reader.line_num}): {len(rec)} fields, the header has "
                                    f"{len(header)}")
                yield i, {k: (v if v != "" else None) for k, v in zip(header, rec)}
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text: {e}") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed TSV: {e}") from None
    finally:
        csv.field_size_limit(old_limit)


def _check_columns(path: Path, names: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise DataError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {missing} (columns: {names})")
    if not any(c in names for c in LETTERS):
        raise DataError(f"{path}: no option columns A, B, ... (columns: {names})")


def _present(value: Any) -> bool:
    """Not missing: VLMEvalKit's ``not pd.isna`` (None / NaN), and an empty TSV field."""
    if value is None:
        return False
    if isinstance(value, float) and value != value:
        return False
    return not (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    """A cell as text; an integral float (pandas' reading of an int column with gaps) without its '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Images:
    """Decodes base64 images once per distinct string (the rows of a question's cycles carry the same image)."""

    def __init__(self) -> None:
        self.by_digest: dict[bytes, bytes] = {}

    def decode(self, value: Any, where: str) -> dict:
        if isinstance(value, dict) and isinstance(value.get("bytes"), (bytes, bytearray)) and value["bytes"]:
            return {"bytes": bytes(value["bytes"]), "path": value.get("path") if isinstance(value.get("path"), str)
                    else None}
        if not isinstance(value, str):
            raise DataError(f"{where}: field 'image': expected a base64-encoded image, got {type(value).__name__}")
        digest = hashlib.blake2b(value.encode("utf-8", "replace"), digest_size=16).digest()
        data = self.by_digest.get(digest)
        if data is None:
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                try:
                    data = base64.b64decode("".join(value.split()), validate=True)  # line-wrapped base64
                except (binascii.Error, ValueError) as e:
                    raise DataError(f"{where}: field 'image': not valid base64 ({e}; starts {value[:24]!r})") from None
            if not data:
                raise DataError(f"{where}: field 'image': empty image")
            self.by_digest[digest] = data
        return {"bytes": data, "path": None}


# ----------------------------------------------------------------------------- adapters
class HRBench(Benchmark):
    """HR-Bench at one resolution (subclasses: :class:`HRBench4K`, :class:`HRBench8K`)."""

    resolution: ClassVar[str] = ""  # "4k" / "8k": the files hr_bench_<resolution>.{parquet,tsv}
    categories = ("category", "cycle_category")
    deviations = (
        "The HR-Bench repo scores every prediction with an LLM judge (yes/no: does it answer the question, given the "
        "correct option); VLMEvalKit maps it to an option with its rule-based can_infer and asks ChatGPT only when "
        "the rules find nothing. We use the rules only (VLMEvalKit's exact_matching mode: unmatched answers score 0), "
        "applied to final_text (the <answer> block, or the text after </think>). The official number averages the "
        "per-cycle accuracies (hrbench_report); the runner's overall and per-category accuracy are plain means, equal "
        "to it when every cycle holds the same questions (the full released files), not on a subset or with skipped "
        "samples."
    )

    @property
    def stem(self) -> str:
        return f"hr_bench_{self.resolution}"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        split = split or self.default_split
        if split != self.default_split:
            raise DataError(f"{self.title} has a single split {self.default_split!r} ({self.stem}.parquet / "
                            f"{self.stem}.tsv), got split {split!r}")
        data_dir = Path(data_dir)
        parquet, tsv = data_dir / f"{self.stem}.parquet", data_dir / f"{self.stem}.tsv"
        if parquet.is_file():
            path, rows = parquet, _parquet_rows(parquet)
        elif tsv.is_file():
            path, rows = tsv, _tsv_rows(tsv)
        else:
            found = sorted(p.name for p in data_dir.iterdir()) if data_dir.is_dir() else []
            raise DataError(f"{self.title}: neither {parquet.name} nor {tsv.name} in {data_dir}; files there: "
                            f"{found or 'none'}")
        images = _Images()
        samples: list[Sample] = []
        first_row: dict[str, int] = {}
        image_of: dict[str, dict] = {}  # index -> decoded image, for rows whose image names another row
        pending: list[tuple[Sample, str, str]] = []
        for i, row in rows:
            where = f"{path}:row {i}"
            sample, image = self._sample(row, where)
            if sample.id in first_row:
                raise DataError(f"{where}: duplicate index {sample.id!r} (first at row {first_row[sample.id]})")
            first_row[sample.id] = i
            if isinstance(image, str) and len(image.strip()) <= IMAGE_REF_MAX:
                pending.append((sample, image.strip(), where))
            else:
                ref = images.decode(image, where)
                sample.images = [ref]
                image_of[sample.id] = ref
            samples.append(sample)
        for sample, target, where in pending:
            if target not in image_of:
                raise DataError(f"{where}: field 'image': {target!r} is neither a base64 image nor the index of a row "
                                f"holding one")
            sample.images = [image_of[target]]
        if not samples:
            raise DataError(f"{path}: no rows")
        return samples

    def _sample(self, row: dict, where: str) -> tuple[Sample, Any]:
        for name in REQUIRED:
            if not _present(row.get(name)):
                present = sorted(k for k, v in row.items() if _present(v))
                raise DataError(f"{where}: missing field '{name}' (present: {present})")
        index = row["index"]
        if isinstance(index, bool) or not isinstance(index, (int, float, str)):
            raise DataError(f"{where}: field 'index': expected an integer or string, got {index!r}")
        sid = _text(index).strip()
        question = row["question"]
        if not isinstance(question, str):
            raise DataError(f"{where}: field 'question': expected a string, got {type(question).__name__}")
        options = {c: _text(row[c]) for c in LETTERS if c in row and _present(row[c])}
        if len(options) < 2:
            raise DataError(f"{where}: expected at least two options in columns A, B, ..., found {list(options)}")
        answer = str(row["answer"]).strip()
        if answer not in options:
            raise DataError(f"{where}: field 'answer': expected one of {list(options)}, got {row['answer']!r}")
        hint = _text(row["hint"]) if _present(row.get("hint")) else None
        raw_category = _text(row["category"]).strip()
        metadata = {"categories": {"category": CATEGORY_NAMES.get(raw_category, raw_category),
                                   "cycle_category": _text(row["cycle_category"]).strip()},
                    "options": options, "question": question, "hrbench_category": raw_category}
        sample = Sample(id=sid, prompt=build_prompt(question, options, hint), answer=answer, images=[],
                        task=self.name, metadata=metadata, source=where)
        return sample, row["image"]

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            text = final_text(completion if isinstance(completion, str) else "")
            choices = dict(sample.metadata.get("options") or {})
            pred = can_infer(text, choices)
            letter = pred if isinstance(pred, str) and pred in choices else None  # 'Z' / False: no option
            return Judgement(letter, 1.0 if letter is not None and letter == str(sample.answer) else 0.0)
        except Exception:
            return Judgement(None, 0.0)

    @staticmethod
    def aggregate(samples: Iterable[dict]) -> dict[str, dict]:
        """The official cycle-averaged numbers (:func:`hrbench_report`) from the per-sample rows of a run."""
        return hrbench_report(samples)


@register_benchmark("hrbench4k")
class HRBench4K(HRBench):
    resolution = "4k"
    title = "HR-Bench 4K"
    source = "https://huggingface.co/datasets/DreamMr/HR-Bench: hr_bench_4k.parquet (or hr_bench_4k.tsv)"
    layout = "DIR/hr_bench_4k.parquet or DIR/hr_bench_4k.tsv"
    default_split = "hrbench_4k"


@register_benchmark("hrbench8k")
class HRBench8K(HRBench):
    resolution = "8k"
    title = "HR-Bench 8K"
    source = "https://huggingface.co/datasets/DreamMr/HR-Bench: hr_bench_8k.parquet (or hr_bench_8k.tsv)"
    layout = "DIR/hr_bench_8k.parquet or DIR/hr_bench_8k.tsv"
    default_split = "hrbench_8k"

