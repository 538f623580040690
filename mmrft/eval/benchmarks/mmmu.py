"""MMMU (validation): college-level multi-discipline questions, multiple choice and open answers.

Prompt and scoring follow the official MMMU evaluation code (github.com/MMMU-Benchmark/MMMU):

* prompt: ``mmmu/utils/data_utils.py::construct_prompt`` with the ``configs/llava1.5.yaml`` templates
  (``multi_choice_example_format`` = ``"{}\\n{}\\nAnswer with the option's letter from the given choices
  directly."``, the options rendered as ``"(A) text\\n"`` lines; ``short_ans_example_format`` = ``"{}\\nAnswer the
  question using a single word or phrase."``). ``<image N>`` markers stay in the text, as in the official prompt;
  the images ``image_1..image_7`` that are present are passed in that order.
* scoring: ``eval/eval_utils.py`` (same code as ``mmmu/utils/eval_utils.py``): ``parse_multi_choice_response`` +
  ``eval_multi_choice`` for multiple choice, ``parse_open_response`` + ``eval_open`` for open questions, ported
  rule for rule below (including their quirks: the 5-token gate on option-text matching, the last occurrence
  winning when several options are named, numbers rounded to 2 decimals, substring matching of string answers).
* categories: subject (the folder name), discipline (``DOMAIN_CAT2SUB_CAT`` of ``data_utils.py``, named as in the
  paper), ``question_type`` and ``topic_difficulty`` as released.

What the official parser is given (:func:`response_text`).  The official pipeline (``main_parse_and_eval.py``)
passes the model's ``response`` to the parser as generated, so for a plain completion (no ``<think>`` /
``</think>`` / ``<answer>`` tag) mmrft does the same: the completion, byte for byte, *not stripped*.  Whitespace
matters to the official multiple-choice parser: it strips only ``, . ! ? ; : '`` from the ends and then looks for
``"(A)"``, then ``" A "``, so ``"A\\n"``, ``"\\nA"`` and ``"The answer is A.\\n"`` (the newline shields the
period) name no letter and get the official random guess (here: no answer, see 3. below), while ``"  (A) "`` and
``"A."`` read A.  (The open-question parser strips whitespace itself, so there whitespace never matters.)  mmrft
differs from the official code in exactly three places, all listed in :attr:`MMMU.deviations`:

1. R1-format completions (mmrft's addition; the official code predates the format): when the completion has an
   ``<answer>`` block or a ``<think>`` / ``</think>`` tag, the parser reads
   :func:`~mmrft.eval.benchmarks.base.final_text`: the content of the last ``<answer>`` block, else the text after
   the last ``</think>``, stripped of surrounding whitespace (``<answer>\\nB\\n</answer>`` reads ``"B"``: the
   template puts the tags on their own lines, so that whitespace belongs to the format, not to the answer).  An
   unclosed ``<think>`` (truncated reasoning) reads ``""``: no answer.
2. ``\\boxed{}`` (mmrft's addition): if that text contains a ``\\boxed{...}``, the parser reads the content of the
   last one, stripped (the official parser finds no letter in ``"\\boxed{B}"``).
3. The random guess: where the official parser finds no option it returns ``random.choice(all_choices)`` (module-
   level ``random.seed(42)``, so the guess depends on evaluation order); mmrft returns ``None`` and scores 0,
   deterministically, so accuracy is a lower bound (by about the unparsed fraction / the number of options).

Everything else, i.e. all of the parsing and scoring of that text, is the official code ported rule for rule.
(``Judgement.extracted`` of an open question, one normalised string for majority voting, is mmrft's own; it does
not affect the score.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Optional, Union

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import read_parquet
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.rewards.extract import answer_block, last_boxed

__all__ = ["MMMU", "DISCIPLINES", "parse_multi_choice_response", "parse_open_response", "eval_open", "response_text"]

MULTI_CHOICE_FORMAT = "{}\n{}\nAnswer with the option's letter from the given choices directly."
SHORT_ANSWER_FORMAT = "{}\nAnswer the question using a single word or phrase."
IMAGE_COLUMNS = tuple(f"image_{k}" for k in range(1, 8))
REQUIRED = ("id", "question", "options", "answer", "question_type")

# Official DOMAIN_CAT2SUB_CAT (eval/data_utils.py), disciplines named as in the MMMU paper.
DISCIPLINES: dict[str, tuple[str, ...]] = {
    "Art & Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health & Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                          "Pharmacy", "Public_Health"),
    "Humanities & Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech & Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                           "Energy_and_Power", "Materials", "Mechanical_Engineering"),
}
_SUBJECT_TO_DISCIPLINE = {s: d for d, subjects in DISCIPLINES.items() for s in subjects}


# ----------------------------------------------------------------------------- official parsing, ported
def parse_multi_choice_response(response: str, all_choices: list[str], index2ans: dict[str, str]) -> Optional[str]:
    """Official ``parse_multi_choice_response``, except that it returns ``None`` where the official code falls
    back to ``random.choice(all_choices)`` (deviation 3 of the module docstring).

    ``response`` must be the text the official code would parse (see :func:`response_text`), unstripped: only
    ``, . ! ? ; : '`` are stripped from its ends, so ``"A\\n"`` names no letter (official: a random guess)."""
    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    response = " " + response + " "  # official: spaces avoid partial matches
    index_ans, ans_with_brack = True, False
    candidates = [c for c in all_choices if f"({c})" in response]
    if candidates:
        ans_with_brack = True
    else:
        candidates = [c for c in all_choices if f" {c} " in response]
    if not candidates and len(response.split()) > 5:  # official: option *text* only for longer responses
        candidates = [i for i, ans in index2ans.items() if ans.lower() in response.lower()]
        index_ans = False
    if not candidates:
        return None  # official: random.choice(all_choices)
    if len(candidates) == 1:
        return candidates[0]
    if index_ans:
        pattern = "({})" if ans_with_brack else " {} "
        starts = [response.rfind(pattern.format(c)) for c in candidates]
    else:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[starts.index(max(starts))]  # official: np.argmax -> first of equal maxima


def _check_is_number(string: str) -> bool:
    try:
        float(string.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize_str(string: str) -> list[Union[str, float]]:
    """Official ``normalize_str``: numbers become floats rounded to 2 decimals, strings are lower-cased."""
    string = string.strip()
    if _check_is_number(string):
        return [round(float(string.replace(",", "")), 2)]
    string = string.lower()
    if len(string) == 1:
        return [" " + string, string + " "]  # official: avoid trivial matches
    return [string]


def extract_numbers(string: str) -> list[str]:
    """Official ``extract_numbers``: comma-grouped, scientific, then simple numbers."""
    commas = re.findall(r"-?\b\d{1,3}(?:,\d{3})+\b", string)
    scientific = re.findall(r"-?\d+(?:\.\d+)?[eE][+-]?\d+", string)
    simple = re.findall(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])", string)
    return commas + scientific + simple


def _key_subresponses(response: str) -> list[str]:
    """Official ``get_key_subresponses``: the shortest tail after an indicator word, per sentence."""
    response = response.strip().strip(".").lower()
    sub_responses = re.split(r"\.\s(?=[A-Z])|\n", response)
    indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
    keys = []
    for index, resp in enumerate(sub_responses):
        if index == len(sub_responses) - 1:
            indicators.append("=")  # official: the last sentence may be an equation
        shortest = None
        for indicator in indicators:
            if indicator in resp:
                tail = resp.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in [":", ",", ".", "!", "?", ";", ":", "'"]:
            keys.append(shortest)
    return keys or [response]


def parse_open_response(response: str) -> list[Union[str, float]]:
    """Official ``parse_open_response`` (deduplicated candidates; sorted here so the order is reproducible)."""
    keys = _key_subresponses(response)
    preds: list[str] = list(keys)
    for resp in keys:
        preds.extend(extract_numbers(resp))
    out: list[Union[str, float]] = []
    for p in preds:
        out.extend(normalize_str(p))
    return sorted(set(out), key=lambda x: (isinstance(x, str), str(x)))


def eval_open(gold: Union[str, list[str]], preds: list[Union[str, float]]) -> bool:
    """Official ``eval_open``: a float candidate must equal a numeric gold; a string gold must be a substring."""
    golds = gold if isinstance(gold, list) else [gold]
    norm_answers: list[Union[str, float]] = []
    for answer in golds:
        norm_answers.extend(normalize_str(answer))
    for pred in preds:
        if isinstance(pred, str):
            if any(isinstance(a, str) and a in pred for a in norm_answers):
                return True
        elif pred in norm_answers:
            return True
    return False


def _open_extracted(response: str) -> Optional[str]:
    """One normalised string for majority voting: the last number of the last key phrase, else that phrase."""
    if not response.strip():
        return None
    last = _key_subresponses(response)[-1]
    numbers = extract_numbers(last)
    if numbers:
        return str(normalize_str(numbers[-1])[0])
    return last.strip() or None


def _parse_gold_open(answer: str) -> Union[str, list[str]]:
    """Open answers are a string, or a Python list literal of accepted strings (``"['24/7', '3.429']"``)."""
    text = answer.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return answer
        if isinstance(value, list) and value:
            return [str(v) for v in value]
    return answer


# ----------------------------------------------------------------------------- what the parser reads
def response_text(completion: str) -> str:
    """The text given to the official parsers (module docstring, "What the official parser is given").

    A plain completion is returned unchanged, surrounding whitespace included, as the official pipeline passes the
    model's response.  An R1-format completion (an ``<answer>`` block, or a ``<think>``/``</think>`` tag) is
    unwrapped by :func:`~mmrft.eval.benchmarks.base.final_text` (deviation 1); then, in either case, the content of
    the last ``\\boxed{}``, stripped, replaces the text if there is one (deviation 2).
    """
    low = completion.lower()
    if answer_block(completion) is not None or "<think>" in low or "</think>" in low:
        text = final_text(completion)
    else:
        text = completion  # official: the response as generated; final_text would strip it
    boxed = last_boxed(text)
    return boxed.strip() if boxed is not None else text


# ----------------------------------------------------------------------------- adapter
def _image_ref(value: Any, base: Path) -> Optional[Union[str, dict]]:
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return {"bytes": bytes(data), "path": path if isinstance(path, str) else None}
        value = path
    if isinstance(value, str) and value:
        return str((base / value).resolve())
    return None


@register_benchmark("mmmu")
class MMMU(Benchmark):
    title = "MMMU (validation)"
    source = ("https://huggingface.co/datasets/MMMU/MMMU: the 30 subject folders "
              "(<Subject>/validation-*.parquet; dev-*/test-* for the other splits)")
    layout = "DIR/<Subject>/<split>-*.parquet (e.g. DIR/Art_Theory/validation-00000-of-00001.parquet)"
    categories = ("discipline", "subject", "question_type", "topic_difficulty")
    deviations = (
        "A plain completion is parsed as generated (not stripped), as the official pipeline does. Three "
        "differences: (1) an R1-format completion is parsed from its final answer (final_text: the <answer> block, "
        "else the text after </think>, stripped; an unclosed <think> gives no answer); (2) if that text contains a "
        "\\boxed{...}, the stripped content of the last one is parsed instead (the official parser predates "
        "\\boxed answers and finds no letter in '\\boxed{B}'); (3) when no option can be parsed from a "
        "multiple-choice response, the official parser guesses random.choice(all_choices) (global seed 42, so the "
        "guess depends on evaluation order); we score it 0 (extracted None), so accuracy is a lower bound, by "
        "(unparsed fraction)/(number of options) in expectation. Otherwise the official rules, unchanged."
    )
    default_split = "validation"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        split = split or self.default_split
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(f"MMMU data directory not found: {data_dir}")
        files = sorted(data_dir.glob(f"*/{split}-*.parquet"))
        if not files:
            found = sorted(str(p.relative_to(data_dir)) for p in data_dir.glob("**/*.parquet"))[:20]
            raise DataError(f"no MMMU '{split}' files ({data_dir}/<Subject>/{split}-*.parquet); "
                            f"parquet files found: {found or 'none'}")
        samples: list[Sample] = []
        for path in files:
            rows = read_parquet(path)
            subject = path.parent.name
            for i, row in enumerate(rows):
                samples.append(self._sample(row, subject, path, i))
        return samples

    def _sample(self, row: dict, subject: str, path: Path, i: int) -> Sample:
        where = f"{path}:row {i}"
        for name in REQUIRED:
            if row.get(name) is None:
                present = sorted(k for k, v in row.items() if v is not None)
                raise DataError(f"{where}: missing field '{name}' (present: {present})")
        qtype = str(row["question_type"])
        try:
            options = ast.literal_eval(row["options"]) if isinstance(row["options"], str) else row["options"]
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
            raise DataError(f"{where}: field 'options': not a Python list literal ({type(e).__name__}): "
                            f"{row['options']!r:.80}") from None
        if not isinstance(options, list):
            raise DataError(f"{where}: field 'options': expected a list literal, got {type(options).__name__}")
        options = [str(o) for o in options]
        answer = str(row["answer"]).strip()
        if qtype == "multiple-choice":
            if not options:
                raise DataError(f"{where}: field 'options': a multiple-choice question needs options")
            letters = [chr(ord("A") + k) for k in range(len(options))]
            if answer not in letters and split_of(row["id"]) != "test":
                raise DataError(f"{where}: field 'answer': expected one of {letters}, got {answer!r}")
            example = "".join(f"({letter}) {text}\n" for letter, text in zip(letters, options))
            prompt = MULTI_CHOICE_FORMAT.format(row["question"], example)
        else:
            prompt = SHORT_ANSWER_FORMAT.format(row["question"])
        base = path.parent
        images = [ref for ref in (_image_ref(row.get(c), base) for c in IMAGE_COLUMNS) if ref is not None]
        categories = {
            "discipline": _SUBJECT_TO_DISCIPLINE.get(subject, "unknown"),
            "subject": subject,
            "question_type": qtype,
            "topic_difficulty": str(row.get("topic_difficulty") or "unknown"),
        }
        metadata = {"categories": categories, "options": options, "question_type": qtype,
                    "subfield": row.get("subfield"), "img_type": row.get("img_type")}
        return Sample(id=str(row["id"]), prompt=prompt, answer=answer, images=images, task=self.name,
                      metadata=metadata, source=where)

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            text = response_text(completion if isinstance(completion, str) else "")
            if sample.metadata.get("question_type") == "multiple-choice":
                options = list(sample.metadata.get("options") or [])
                letters = [chr(ord("A") + k) for k in range(len(options))]
                pred = parse_multi_choice_response(text, letters, dict(zip(letters, options)))
                return Judgement(pred, 1.0 if pred is not None and pred == str(sample.answer) else 0.0)
            preds = parse_open_response(text)
            correct = eval_open(_parse_gold_open(str(sample.answer)), preds)
            return Judgement(_open_extracted(text), 1.0 if correct else 0.0)
        except Exception:
            return Judgement(None, 0.0)


def split_of(sample_id: Any) -> str:
    """``"validation_Art_1"`` -> ``"validation"`` (MMMU ids start with their split)."""
    return str(sample_id).split("_", 1)[0]
