"""The benchmark adapter interface and its registry.

An adapter turns a benchmark's *released* files (as published: parquet / JSON / TSV plus image folders) into
:class:`~mmrft.data.schema.Sample` rows whose ``prompt`` is the question exactly as the benchmark's own evaluation
builds it, and judges a model completion with the benchmark's answer-extraction rules and metric.

Adding a benchmark is one small module::

    @register_benchmark("my_bench")
    class MyBench(Benchmark):
        title = "My Bench (test)"
        source = "https://... (files to download)"
        layout = "DIR/test.jsonl, DIR/images/*.png"
        categories = ("subject",)
        deviations = "none: the official scorer is rule-based"

        def load(self, data_dir, split=None):
            ...  # -> list[Sample], task=self.name, metadata["categories"] = {"subject": ...}

        def judge(self, completion, sample):
            text = final_text(completion)
            ...  # -> Judgement(extracted=..., score=...)

Conventions every adapter follows:

* ``Sample.task`` is the benchmark's registry name; ``Sample.id`` is the benchmark's own id (stable across runs:
  evaluation results are cached by it).
* ``Sample.metadata["categories"]`` maps each name in :attr:`Benchmark.categories` to a string (or a list of strings
  when a sample belongs to several, e.g. MathVista skills); the runner reports accuracy per value.
* Images stay references (paths or ``{"bytes", "path"}``): they are decoded lazily, batch by batch, and a missing or
  corrupt image is reported by the runner with the sample id, never raised from ``load``.
* ``judge`` never raises on any completion. ``Judgement.extracted`` is the normalised answer (``None`` when nothing
  could be extracted); majority voting groups samples by it, so equal answers must give equal strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from mmrft.registry import Registry
from mmrft.data.schema import Sample
from mmrft.errors import ConfigError, DataError
from mmrft.rewards.extract import answer_block

__all__ = ["Benchmark", "Judgement", "BENCHMARKS", "register_benchmark", "get_benchmark", "final_text", "read_parquet",
           "read_json"]


@dataclass(frozen=True)
class Judgement:
    """What a benchmark's rules read from one completion, and its score in [0, 1]."""

    extracted: Optional[str]
    score: float


class Benchmark:
    """Base class of benchmark adapters (see the module docstring)."""

    name: ClassVar[str] = ""  # set by @register_benchmark
    title: ClassVar[str] = ""  # human-readable, with the split: "MathVista (testmini)"
    source: ClassVar[str] = ""  # where to download the released files
    layout: ClassVar[str] = ""  # the directory layout `load` expects
    categories: ClassVar[tuple[str, ...]] = ()  # metadata["categories"] keys reported separately
    deviations: ClassVar[str] = ""  # how our scoring differs from the official evaluation, and why
    default_split: ClassVar[Optional[str]] = None

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        """Read the released files under `data_dir`; raise DataError naming the file and field on bad input."""
        raise NotImplementedError

    def judge(self, completion: str, sample: Sample) -> Judgement:
        """Extract the answer with the benchmark's rules and score it; never raises."""
        raise NotImplementedError

    # Optional: `aggregate(samples) -> {"average": {"all": acc, ...}, ...}` from the per-sample rows of a run
    # (``{"id", "score", "categories"}``), for a benchmark whose official number is not the plain mean (HR-Bench
    # averages over its option cycles); the runner stores it as ``results["official"]``.
    aggregate = None


# the built-in adapters register themselves when `mmrft.eval.benchmarks` is imported; a lookup loads them
BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark", builtin_modules=("mmrft.eval.benchmarks",))


def register_benchmark(name: str, *, override: bool = False):
    """Class decorator: register an adapter under `name` (also stored as its ``name`` attribute)."""

    def decorator(cls: type[Benchmark]) -> type[Benchmark]:
        cls.name = name
        return BENCHMARKS.register(name, override=override)(cls)

    return decorator


def get_benchmark(name: str, **options) -> Benchmark:
    """An instance of the adapter registered as `name`, built with `options` (e.g. ``box_format="norm1000"`` for
    RefCOCO); KeyError lists the known names, a bad option is a ConfigError naming it."""
    cls = BENCHMARKS[name]
    try:
        return cls(**options)
    except TypeError as e:
        raise ConfigError(f"benchmark {name!r} does not take the options {sorted(options)}: {e}") from None


def final_text(completion: str) -> str:
    """The part of a completion a benchmark's extractor should read.

    Models trained with the R1 format write ``<think>…</think><answer>…</answer>``: the content of the last
    ``<answer>`` block is returned when there is one; otherwise the text after the last ``</think>``; otherwise, when
    a ``<think>`` was opened and never closed (generation stopped mid-reasoning), the empty string: numbers in
    unfinished reasoning are not an answer; otherwise the whole completion (a plain-format model's output, which
    the benchmark's own rules then parse).
    """
    block = answer_block(completion)
    if block is not None:
        return block.strip()
    low = completion.lower()
    end = low.rfind("</think>")
    if end >= 0:
        return completion[end + len("</think>"):].strip()
    if "<think>" in low:
        return ""
    return completion.strip()


def read_parquet(path: Path, columns: Optional[list[str]] = None) -> list[dict]:
    """Rows of a released parquet file; DataError naming the file when it is not readable parquet."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns).to_pylist()
    except Exception as e:  # pyarrow raises several types for a truncated / non-parquet file
        raise DataError(f"{path}: cannot read parquet file: {e}") from None


def read_json(path: Path):
    """A released JSON file; DataError naming the file when it is unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read JSON: {e}") from None
