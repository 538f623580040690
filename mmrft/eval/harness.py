"""Run a model on a benchmark: batched generation, judging under a time limit, per-sample results cached on disk.

`RUN/predictions.jsonl` is the cache: a header line with the setup (model, benchmark, split, options, sampling),
then one line per finished sample, appended and flushed batch by batch. Running the same command again reads it
and generates only the samples it lacks, so an interrupted evaluation resumes where it stopped; a torn last line
(the process killed mid-write) is ignored and that sample is redone. A different setup in the same RUN directory
is refused rather than mixed in.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mmrft import atomic
from mmrft.data.collate import MediaOptions, encode_prompts
from mmrft.data.media import describe_ref, load_image
from mmrft.data.schema import Sample
from mmrft.errors import DataError, MmrftError
from mmrft.eval.benchmarks.base import Benchmark, Judgement
from mmrft.rewards.worker import RewardTimeout, time_limit, timeout_handler
from mmrft.rollout.engine import SamplingParams, trajectory_summaries
from mmrft.rollout.hf import HFRolloutEngine

log = logging.getLogger("mmrft.eval")

CACHE_FILE = "predictions.jsonl"


@dataclass
class EvalSetup:
    """Everything that changes the predictions; a cache is reused only for an identical setup."""

    model: str
    benchmark: str
    split: Optional[str]
    options: dict[str, Any] = field(default_factory=dict)
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 0  # always given (`evaluate_benchmark`)
    prompt_format: str = "r1"
    system_prompt: Optional[str] = None
    dtype: str = "float32"  # of the model's weights
    # multi-turn with tools (`mmrft eval --tools`): {"tools": [...], "max_turns", "max_tool_calls", "max_images",
    # "max_total_tokens", "tool_timeout_s"}; {} answers in one turn
    tools: dict[str, Any] = field(default_factory=dict)
    max_pixels: Optional[int] = None  # prompt images downsized to this many pixels first (`data.max_pixels`)


SETUP_DEFAULTS = {"tools": {}, "max_pixels": None}  # fields added after caches were written: an old cache holds their default


def judge_with_limit(bench: Benchmark, completion: str, sample: Sample, timeout_s: float) -> tuple[Judgement, bool]:
    """`bench.judge` under a SIGALRM time limit (main thread only; elsewhere untimed). (judgement, timed out)."""
    timed = threading.current_thread() is threading.main_thread() and timeout_s > 0
    try:
        with timeout_handler(timed), time_limit(timeout_s, timed):
            return bench.judge(completion, sample), False
    except RewardTimeout:
        return Judgement(None, 0.0), True
    except Exception as e:  # an adapter must not raise; if one does, the completion scores 0 and we say so
        log.warning("benchmark %s: judge raised on sample %s: %s: %s", bench.name, sample.id, type(e).__name__, e)
        return Judgement(None, 0.0), False


def image_problem(sample: Sample) -> Optional[str]:
    """None when every image of the sample decodes, else what is wrong (file and reason)."""
    for ref in sample.images:
        try:
            load_image(ref)
        except DataError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad image
            return f"not a readable image: {describe_ref(ref)}: {e}"
    return None


def read_cache(path: Path, setup: EvalSetup) -> dict[str, dict]:
    """Records already in `path` for this setup (by sample id); {} when there is no cache."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or "setup" not in header:
        raise MmrftError(f"{path}: not an mmrft evaluation cache (no setup header); use another --out directory")
    stored = {**SETUP_DEFAULTS, **header["setup"]}
    if stored != json.loads(json.dumps(asdict(setup))):
        diff = {k: (stored.get(k), v) for k, v in asdict(setup).items() if stored.get(k) != v}
        raise MmrftError(f"{path} holds results of a different setup ({', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in diff.items())}); "
                         "use another --out directory or --overwrite")
    records = {}
    for i, line in enumerate(lines[1:], start=2):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: unreadable line (interrupted write?), that sample will be redone", path, i)
            continue
        records[rec["id"]] = rec
    return records


class _CacheWriter:
    def __init__(self, path: Path, setup: EvalSetup, fresh: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh or not path.is_file():
            atomic.write_text(path, json.dumps({"setup": asdict(setup)}) + "\n")
        else:  # drop a torn last line so appended records start on a line of their own
            text = path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                atomic.write_text(path, text[: text.rfind("\n") + 1])
        self._fh = path.open("a", encoding="utf-8")

    def write(self, records: list[dict]) -> None:
        for rec in records:
            self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def answer_engine(model, processor, tools: dict[str, Any], first_view_max_pixels: Optional[int] = None):
    """(engine, tool schemas for the prompts): `generate` with the model, or for `tools` (`EvalSetup.tools`) the
    multi-turn loop around it, each question's trajectory in a `ToolEnvironment` under the given limits."""
    engine = HFRolloutEngine(model, processor)
    if not tools:
        return engine, None
    from mmrft.rollout.multiturn import MultiTurnEngine, TurnLimits
    from mmrft.tools import ToolEnvironment, tool_schemas

    names, timeout = list(tools["tools"]), float(tools.get("tool_timeout_s", 5.0))
    limits = TurnLimits(tools["max_turns"], tools["max_tool_calls"], tools["max_total_tokens"], tools["max_images"])
    multi = MultiTurnEngine(engine, model, processor, lambda sample, ctx: ToolEnvironment(names, timeout_s=timeout),
                            limits, reuse_cache=True, first_view_max_pixels=first_view_max_pixels)
    return multi, tool_schemas(names) if tools.get("tool_list", True) else None


def multi_turn_setup(rollout) -> dict[str, Any]:
    """`EvalSetup.tools` from a config's `rollout` section (`mmrft.config.RolloutConfig`): {} without tools."""
    if not rollout.tools:
        return {}
    return {"tools": list(rollout.tools), "max_turns": rollout.max_turns, "max_tool_calls": rollout.max_tool_calls,
            "max_images": rollout.max_images, "max_total_tokens": rollout.max_total_tokens,
            "tool_timeout_s": rollout.tool_timeout_s, "tool_list": rollout.tool_list}


def run_benchmark(
    model,
    processor,
    bench: Benchmark,
    samples: list[Sample],
    setup: EvalSetup,
    *,
    out_dir: Optional[Path] = None,
    batch_size: int = 16,
    judge_timeout_s: float = 5.0,
    overwrite: bool = False,
    progress: Optional[Callable[[int], None]] = None,
) -> list[dict]:
    """Generate `setup.samples` completions per sample, judge them, and return one record per sample in input
    order: ``{"id", "categories", "answer", "completions", "extracted", "scores", "timeouts"}`` or, for a sample
    whose image is missing or corrupt, ``{"id", "categories", "skipped": reason}``. With `out_dir`, records are
    cached in ``out_dir/predictions.jsonl`` and reused on the next call with the same setup."""
    cache_path = Path(out_dir) / CACHE_FILE if out_dir is not None else None
    done = {} if cache_path is None or overwrite else read_cache(cache_path, setup)
    writer = _CacheWriter(cache_path, setup, fresh=overwrite or not done) if cache_path is not None else None
    todo = [s for s in samples if s.id not in done]
    if done and progress is not None:
        progress(len(samples) - len(todo))
    engine, schemas = answer_engine(model, processor, setup.tools, setup.max_pixels)
    media = MediaOptions(max_pixels=setup.max_pixels)
    params = SamplingParams(n=setup.samples, max_new_tokens=setup.max_new_tokens, temperature=setup.temperature,
                            top_p=setup.top_p)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            new: list[dict] = []
            ok: list[Sample] = []
            for s in chunk:
                problem = image_problem(s)
                if problem is None:
                    ok.append(s)
                else:
                    log.warning("benchmark %s: sample %s skipped: %s", bench.name, s.id, problem)
                    new.append({"id": s.id, "categories": s.metadata.get("categories", {}), "skipped": problem})
            if ok:
                batch = encode_prompts(processor, ok, setup.prompt_format, setup.system_prompt, media,
                                       tools=schemas).to(device)
                rollout = engine.generate(batch, params)
                texts, truncated = rollout.texts, rollout.truncated.tolist()
                trajectories = trajectory_summaries(rollout)
                for i, s in enumerate(ok):
                    rows = slice(i * setup.samples, (i + 1) * setup.samples)
                    outs = texts[rows]
                    judged = [judge_with_limit(bench, t, s, judge_timeout_s) for t in outs]
                    rec = {
                        "id": s.id, "categories": s.metadata.get("categories", {}), "answer": s.answer,
                        "completions": outs, "extracted": [j.extracted for j, _ in judged],
                        "scores": [float(j.score) for j, _ in judged], "timeouts": sum(t for _, t in judged),
                        "truncated": sum(truncated[rows]),
                    }
                    if trajectories is not None:  # each answer's tool calls (name, arguments, error) and its end
                        rec["trajectories"] = trajectories[rows]
                        rec["calls"] = [len(t["calls"]) for t in trajectories[rows]]
                    new.append(rec)
            if writer is not None:
                writer.write(new)
            for rec in new:
                done[rec["id"]] = rec
            if progress is not None:
                progress(len(chunk))
    finally:
        if writer is not None:
            writer.close()
        model.train(was_training)
    return [done[s.id] for s in samples]


def evaluate_benchmark(
    model_path: str,
    benchmark: str,
    data_dir: str,
    *,
    split: Optional[str] = None,
    limit: Optional[int] = None,
    samples: int = 1,
    temperature: Optional[float] = None,
    top_p: float = 1.0,
    max_new_tokens: Optional[int] = None,
    batch_size: Optional[int] = None,
    prompt_format: str = "r1",
    system_prompt: Optional[str] = None,
    options: Optional[dict[str, Any]] = None,
    out_dir: Optional[str] = None,
    overwrite: bool = False,
    judge_timeout_s: float = 5.0,
    progress: bool = True,
    model_and_processor=None,
    loaded: Optional[dict] = None,
    dtype: str = "float32",
    tools: Optional[dict[str, Any]] = None,
    max_pixels: Optional[int] = None,
    by: Sequence[str] = (),
) -> dict[str, Any]:
    """`mmrft eval`: load the model (in `dtype`) and the benchmark, run, write `results.json` / `results.md` under
    `out_dir`, return the summary (see `mmrft.eval.results.summarize`). Greedy for one sample; `samples > 1` samples
    at `temperature` (default 1.0) for pass@k and majority voting. `max_new_tokens` / `batch_size` None: those of a
    default config (`mmrft.config.eval_budget`, the one place they are decided); `mmrft eval --config` passes a
    run's. `tools`: answer in the multi-turn loop with these tools and limits (`EvalSetup.tools`; see
    `multi_turn_setup`); the results count tool calls per question. `max_pixels`: show the prompt images downsized
    to at most this many pixels (the tools still crop the originals).
    `loaded`: a dict kept by the caller across calls, in which the benchmark's parsed items are kept (a training run
    evaluates the same files at every evaluation). `by`: sample fields (`task`, a category, a metadata field) to
    break the accuracy down by (`summary["by_field"]`, see `mmrft.eval.results.accuracy_by_field`)."""
    from tqdm.auto import tqdm

    from mmrft.config import Config, ModelConfig, eval_budget
    from mmrft.eval.benchmarks.base import get_benchmark
    from mmrft.eval.results import summarize, with_fields, write_results
    from mmrft.models.load import load_policy, resolve_device

    if samples < 1:
        raise MmrftError(f"--samples must be >= 1, got {samples}")
    default_tokens, default_batch = eval_budget(Config())
    max_new_tokens = default_tokens if max_new_tokens is None else max_new_tokens
    batch_size = default_batch if batch_size is None else batch_size
    if temperature is None:
        temperature = 0.0 if samples == 1 else 1.0
    if samples > 1 and temperature <= 0:
        raise MmrftError(f"--samples {samples} needs sampling: set --temperature > 0 (greedy gives identical samples)")
    options = dict(options or {})
    key = json.dumps([benchmark, str(data_dir), split, options], sort_keys=True, default=str)
    if loaded is not None and key in loaded:
        bench, split, items = loaded[key]
    else:
        bench = get_benchmark(benchmark, **options)
        split = split or bench.default_split
        items = bench.load(Path(data_dir), split)
        if loaded is not None:
            loaded[key] = (bench, split, items)
    if limit is not None:
        items = items[:limit]
    if not items:
        raise DataError(f"{data_dir}: benchmark {benchmark} (split {split}) has no samples")
    if model_and_processor is None:
        model, processor = load_policy(ModelConfig(path=model_path, dtype=dtype), resolve_device())
    else:
        model, processor = model_and_processor
    setup = EvalSetup(model=str(model_path), benchmark=benchmark, split=split, options=options, samples=samples,
                      temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                      prompt_format=prompt_format, system_prompt=system_prompt,
                      dtype=str(next(model.parameters()).dtype).removeprefix("torch."), tools=dict(tools or {}), max_pixels=max_pixels)
    bar = tqdm(total=len(items), desc=benchmark, disable=not progress, dynamic_ncols=True)
    try:
        records = run_benchmark(model, processor, bench, items, setup, out_dir=Path(out_dir) if out_dir else None,
                                batch_size=batch_size, judge_timeout_s=judge_timeout_s, overwrite=overwrite,
                                progress=bar.update)
    finally:
        bar.close()
    by = tuple(by)
    meta = {**asdict(setup), "title": bench.title, "data": str(data_dir), "limit": limit,
            "deviations": bench.deviations, "categories": list(bench.categories)}
    if by:
        meta["by"] = list(by)
        records = with_fields(records, items, by)
    summary = summarize(records, meta, tuple(bench.categories), by)
    official = getattr(bench, "aggregate", None)
    if callable(official):  # the benchmark's own aggregate where it is not the plain mean (HR-Bench: over cycles)
        summary["official"] = official(summary["samples"])
        summary["overall"]["official_accuracy"] = summary["official"]["average"]["all"]
    cut, total = summary["overall"]["truncated"], samples * summary["overall"]["n_scored"]
    if cut > 0.1 * total:
        log.warning("benchmark %s: %d of %d completions hit max_new_tokens=%d before they ended, so their answers may "
                    "be missing (raise --max-new-tokens, or eval.max_new_tokens in the config)", benchmark, cut, total,
                    max_new_tokens)
    if out_dir:
        write_results(Path(out_dir), summary)
    return summary
