"""MATH-Vision (MATH-V): competition math with diagrams, scored with the official rule-based evaluation.

Official files followed (github.com/mathllm/MATH-V):

* ``models/GPT4V.py`` (``process_example_mergedimg``): the prompt is
  ``'Please solve the problem and put your answer in one "\\boxed{}". If it is a multiple choice question, only one
  letter is allowed in the "\\boxed{}".\\n' + f"{question}\\n{options}"`` with ``options`` written
  ``"(A) ...\\n(B) ...\\n"`` unless the options are just the letters ``A``-``E`` (then they are in the image).
  ``<image1>`` markers stay in the question text, as in the release.
* ``evaluation/evaluate.py``: answer extraction (trailing ``" C."`` / ``" (C)."`` / leading ``"C\\n"`` letters,
  ``... is 42``, "the answer is ..." phrases, the last ``\\boxed{}``), then ``find_math_answer``; correct when
  ``is_equal(gold, answer)`` or ``is_equal(gold option text, answer)``; accuracy per subject and level.
* ``evaluation/utils.py``: ``find_math_answer``, ``_strip_string`` and helpers, ``eval_tuple``, ``is_equal``.
  ``is_equal`` evaluates ``latex2sympy`` output with Python ``eval``; we parse with ``latex2sympy2_extended`` and
  evaluate the expression tree with Python floats (no ``eval``), rounding to 2 decimals as the official code does.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Optional

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.eval.benchmarks.base import read_parquet as _read_parquet

__all__ = ["MathVision", "build_prompt", "extract_model_answer", "is_equal"]

_INSTRUCTION = ('Please solve the problem and put your answer in one "\\boxed{}". If it is a multiple choice '
                'question, only one letter is allowed in the "\\boxed{}".\n')
_BOXED_RE = re.compile("oxed{(.*)}", flags=re.S)
_MAX_EVAL_CHARS = 200  # longer expressions are not evaluated numerically


def build_prompt(question: str, options: list) -> str:
    """The official prompt (``models/GPT4V.py``)."""
    opts = ""
    if options and "".join(options) != "ABCDE":
        opts = "".join(f"({chr(65 + i)}) {o}\n" for i, o in enumerate(options))
    return _INSTRUCTION + f"{question}\n{opts}"


# ----------------------------------------------------------------------------- evaluation/utils.py

def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr and substr[0] == "{":
            new_str += substr
        else:
            if len(substr) < 2:
                return string
            a, b = substr[0], substr[1]
            if b != "{":
                new_str += "{" + a + "}{" + b + "}" + substr[2:]
            else:
                new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    try:
        ia, ib = int(a), int(b)
    except ValueError:
        return string
    return "\\frac{" + str(ia) + "}{" + str(ib) + "}" if string == f"{ia}/{ib}" else string


def _fix_sqrt(string: str) -> str:
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        new_string += "\\sqrt{" + split[0] + "}" + split[1:] if split and split[0] != "{" else "\\sqrt" + split
    return new_string


def _strip_string(string: str) -> str:
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""),
                     ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("$", "")):
        string = string.replace(old, new)
    string = string.split("\\text{ ")[0]  # _remove_right_units
    string = string.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2:
        string = string.split("=")[-1]
    if len(string.split("\\approx")) == 2:
        string = string.split("\\approx")[-1]
    if "sqrt" in string:
        string = _fix_sqrt(string)
    string = string.replace(" ", "")
    if "sqrt" in string:  # sic: the official code fixes fractions only when a sqrt is present
        string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def find_math_answer(s: str) -> str:
    s = s.lower().replace("{}", "")
    found = _BOXED_RE.findall(s)
    ans = found[-1] if found else s
    if ans.find("}") != -1 and (ans.find("{") == -1 or ans.find("}") < ans.find("{")):
        ans = ans.split("}")[0]
    ans = ans.split("=")[-1].split("\\approx")[-1]
    for old, new in ((" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"), ("\n", ""),
                     ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""), ("\\right", ""),
                     ("^{\\circ}", ""), ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""), ("{units}", ""), ("units", ""),
                     ("{km}", ""), ("km", "")):
        ans = ans.replace(old, new)
    return _strip_string(ans)


_FUNCS: dict[str, Any] = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
                          "atan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "exp": math.exp,
                          "log": math.log, "Abs": abs, "floor": math.floor, "ceiling": math.ceil}


def _to_float(expr: Any) -> float:
    """Evaluate a sympy expression with Python floats (bounded time, like ``eval`` of its ``str``); raises if not
    a plain real number."""
    import sympy

    if isinstance(expr, (sympy.Number, sympy.NumberSymbol)):
        return float(expr)
    args = [_to_float(a) for a in expr.args]
    if isinstance(expr, sympy.Add):
        return math.fsum(args)
    if isinstance(expr, sympy.Mul):
        return math.prod(args)
    if isinstance(expr, sympy.Pow):
        value = args[0] ** args[1]
    elif isinstance(expr, sympy.factorial) and args[0].is_integer() and 0 <= args[0] <= 170:
        value = float(math.factorial(int(args[0])))
    elif type(expr).__name__ in _FUNCS:
        value = _FUNCS[type(expr).__name__](*args)  # log(x, base) too
    else:
        raise ValueError(f"not a number: {type(expr).__name__}")
    if not isinstance(value, (int, float)):  # complex from a negative base
        raise ValueError("complex")
    return float(value)


def _numeric(s: str) -> Optional[float]:
    """``eval(str(latex2sympy(s)))`` of the official code, computed as floats; None when not a finite number."""
    if len(s) > _MAX_EVAL_CHARS:
        return None
    from latex2sympy2_extended import latex2sympy

    try:
        value = _to_float(latex2sympy(s))
    except Exception:  # parse errors, symbols, overflow, domain errors, recursion
        return None
    return value if math.isfinite(value) else None


def _round2(value: float) -> str:
    r = round(value, 2)
    return str(int(r)) if r == int(r) else str(r)


def _eval_tuple(s: str) -> str:
    parts = s[1:-1].split(",")
    if len(s) < 2 or len(parts) < 2 or (s[0], s[-1]) not in (("(", ")"), ("[", "]")):
        return s
    out = []
    for sub in parts:
        if "infty" in sub or sub in ("a", "-a"):
            out.append(sub)
            continue
        value = _numeric(sub)
        if value is None:  # the official code returns the original string on any error
            return s
        out.append(_round2(value))
    return s[0] + ",".join(out) + s[-1]


def is_equal(asw: str, gt_asw: str) -> bool:
    """Official ``is_equal``: case-insensitive text, evaluated tuples, or values equal to 2 decimals."""
    asw, gt_asw = asw.lower(), gt_asw.lower()
    if asw.replace(" ", "") == "" or gt_asw.replace(" ", "") == "":
        return False
    if gt_asw.strip() == asw.strip():
        return True
    asw, gt_asw = _eval_tuple(asw), _eval_tuple(gt_asw)
    if gt_asw == asw:
        return True
    a, g = _numeric(asw), _numeric(gt_asw)
    return a is not None and g is not None and round(a, 2) == round(g, 2)


# ----------------------------------------------------------------------------- evaluation/evaluate.py

def extract_model_answer(response: str) -> str:
    """The ``model_answer`` of ``evaluate.py`` for one response."""
    model_answer = response.strip()
    for c in "ABCDE":
        if (model_answer.endswith(f" {c}.") or model_answer.endswith(f" ({c}).") or model_answer.startswith(f"{c}\n")
                or model_answer.startswith(f"({c})\n") or model_answer.startswith(f"({c}) {c}\n")):
            model_answer = c
    if _is_number(model_answer.split("is ")[-1].rstrip(".")):
        model_answer = model_answer.split("is ")[-1].rstrip(".")
    if "oxed{" not in model_answer:
        for flag in ("the final answer is", "the answer is", "the correct answer is", "the answer should be"):
            for f in (flag, flag.replace("the", "The")):
                raw = model_answer
                model_answer = model_answer.split(f)[-1].strip()
                if f in raw:
                    model_answer = model_answer.split("\n")[0].split(". ")[0]
    elif model_answer.count("oxed{") > 1:
        model_answer = "\\boxed{" + model_answer.split("oxed{")[-1]
    model_answer = find_math_answer(model_answer)
    for c in "abcde":
        model_answer = model_answer.replace(f"({c})", c)
    for c in "abcde":
        model_answer = model_answer.replace(f"{{{c}}}", c)
    return model_answer.rstrip(".").lstrip(":").strip()


@register_benchmark("mathvision")
class MathVision(Benchmark):
    """MATH-Vision test (3,040 problems) or testmini (304), official rule-based scoring."""

    title = "MATH-Vision (test)"
    source = ("https://huggingface.co/datasets/MathLLMs/MathVision (data/test-*.parquet, data/testmini-*.parquet); "
              "or github.com/mathllm/MATH-V data/test.jsonl + images/")
    layout = "DIR/data/{test,testmini}-*.parquet (HF); or DIR/data/{test,testmini}.jsonl + DIR/images/*.jpg (GitHub)"
    categories = ("subject", "level")
    deviations = ("none in the rules; the official latex2sympy + Python eval numeric comparison is computed with "
                  "latex2sympy2_extended and a float evaluation of the expression tree (no eval; nested powers "
                  "overflow instead of hanging), expressions over 200 characters are not evaluated, and an "
                  "unclosed <think> counts as no answer")
    default_split = "test"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        data_dir = Path(data_dir)
        split = split or self.default_split
        shards = sorted(data_dir.glob(f"data/{split}-*.parquet")) or sorted(data_dir.glob(f"{split}-*.parquet"))
        rows: list[tuple[str, Any]] = []
        for shard in shards:
            rows += [(f"{shard}: row {i}", r) for i, r in enumerate(_read_parquet(shard))]
        if not shards:
            jsonl = next((p for p in (data_dir / "data" / f"{split}.jsonl", data_dir / f"{split}.jsonl")
                          if p.is_file()), None)
            if jsonl is None:
                found = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
                               if p.suffix in (".parquet", ".jsonl"))
                raise DataError(f"{data_dir}: no MATH-Vision '{split}' split: expected data/{split}-*.parquet or "
                                f"data/{split}.jsonl; found {found[:20] or 'no .parquet/.jsonl files'}")
            rows = _read_jsonl(jsonl)
        return [self._sample(row, where, data_dir) for where, row in rows]

    def _sample(self, row: Any, where: str, base: Path) -> Sample:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object, got {type(row).__name__}")
        for name in ("id", "question", "answer"):
            if not isinstance(row.get(name), (str, int)) or isinstance(row.get(name), bool):
                raise DataError(f"{where}: field '{name}': expected a string, got "
                                f"{type(row.get(name)).__name__ if row.get(name) is not None else 'null'}")
        options = row.get("options")
        options = [] if options is None else options
        if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
            raise DataError(f"{where}: field 'options': expected a list of strings")
        answer = str(row["answer"]).strip()
        if not answer:
            raise DataError(f"{where}: field 'answer': empty")
        if options and not (len(answer) == 1 and 0 <= ord(answer) - 65 < len(options)):
            raise DataError(f"{where}: field 'answer': expected an option letter A-{chr(64 + len(options))}, "
                            f"got {answer!r}")
        image = row.get("decoded_image")
        if isinstance(image, dict) and image.get("bytes"):
            images: list = [image]
        elif isinstance(row.get("image"), str) and row["image"]:
            images = [_resolve(row["image"], base)]
        else:
            raise DataError(f"{where}: field 'image': expected an image path or embedded decoded_image")
        level = row.get("level")
        metadata = {"options": list(options), "level": level, "subject": row.get("subject"),
                    "categories": {"subject": row.get("subject"), "level": None if level is None else str(level)}}
        record = {"id": str(row["id"]), "prompt": build_prompt(str(row["question"]), list(options)), "answer": answer,
                  "images": images, "task": self.name, "metadata": metadata}
        return Sample.from_row(record, base_dir=base, where=where)

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            text = final_text(completion)
            if "<think>" in text.lower():  # reasoning never closed: truncated, no answer
                return Judgement(None, 0.0)
            model_answer = extract_model_answer(text)
            if not model_answer:
                return Judgement(None, 0.0)
            gold = str(sample.answer)
            options = sample.metadata.get("options") or []
            value = options[ord(gold) - 65] if options and len(gold) == 1 and 0 <= ord(gold) - 65 < len(options) else ""
            correct = is_equal(gold, model_answer) or is_equal(value, model_answer)
            return Judgement(model_answer, 1.0 if correct else 0.0)
        except Exception:
            return Judgement(None, 0.0)


def _resolve(path: str, base: Path) -> str:
    """GitHub release paths (``images/4.jpg``) are relative to the repository root: DIR, or its parent when DIR is
    the ``data/`` folder itself."""
    return path if (base / path).is_file() or not (base.parent / path).is_file() else str(base.parent / path)



def _read_jsonl(path: Path) -> list[tuple[str, Any]]:
    rows = []
    try:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                rows.append((f"{path}:{i}", json.loads(line)))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{i}: invalid JSON: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    return rows
