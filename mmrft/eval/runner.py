"""Greedy evaluation of a policy on held-out samples: accuracy and mean reward, overall and per task."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmrft.config import eval_split_prefix
from mmrft.data.collate import MediaOptions, encode_prompts
from mmrft.models.families import family_of
from mmrft.data.schema import Sample
from mmrft.eval.records import read_records, records_path
from mmrft.rollout.engine import SamplingParams, trajectory_summaries
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.rewards.scoring import Scorer


@dataclass
class EvalResult:
    per_task: dict[str, dict[str, float]]  # task -> {"accuracy", "reward", "n"}
    records: list[dict] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        n = sum(v["n"] for v in self.per_task.values())
        return sum(v["accuracy"] * v["n"] for v in self.per_task.values()) / max(n, 1)

    @property
    def reward(self) -> float:
        n = sum(v["n"] for v in self.per_task.values())
        return sum(v["reward"] * v["n"] for v in self.per_task.values()) / max(n, 1)

    def flat(self, prefix: str = "eval") -> dict[str, float]:
        out = {f"{prefix}/accuracy": self.accuracy, f"{prefix}/reward": self.reward}
        for task, v in self.per_task.items():
            out[f"{prefix}/{task}/accuracy"] = v["accuracy"]
            out[f"{prefix}/{task}/reward"] = v["reward"]
        return out


def evaluate(
    model,
    processor,
    samples: list[Sample],
    scorer: Scorer,
    *,
    fmt: str = "r1",
    system: str | None = None,
    batch_size: int = 64,
    max_new_tokens: int = 32,
    progress=None,
    media: MediaOptions | None = None,
    engine=None,
    tools: list[dict] | None = None,
) -> EvalResult:
    """Greedy accuracy and mean reward of `model` on `samples`, per task. `engine`: the rollout engine to answer
    with (default: `generate` with the model; a multi-turn run passes its `MultiTurnEngine`, and `tools`, the
    schemas its prompts offer)."""
    engine = engine or HFRolloutEngine(model, processor)
    params = SamplingParams(n=1, max_new_tokens=max_new_tokens, temperature=0.0)
    sums: dict[str, dict[str, float]] = defaultdict(lambda: {"accuracy": 0.0, "reward": 0.0, "n": 0})
    records = []
    device = next(model.parameters()).device
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        prompts = encode_prompts(processor, chunk, fmt, system, media, family_of(model).layout or None, tools)
        rollout = engine.generate(prompts.to(device), params)
        summaries = trajectory_summaries(rollout)
        scores = scorer.score(rollout.texts, chunk, summaries)
        for i, s in enumerate(chunk):
            agg = sums[s.task]
            agg["accuracy"] += float(scores.correct[i])
            agg["reward"] += float(scores.totals[i])
            agg["n"] += 1
            record = {"id": s.id, "task": s.task, "completion": rollout.texts[i], "answer": s.answer,
                      "reward": float(scores.totals[i]), "correct": bool(scores.correct[i])}
            if summaries is not None:  # a multi-turn answer: its calls, turns and how it ended
                record["trajectory"] = summaries[i]
            records.append(record)
        if progress is not None:
            progress(len(chunk))
    per_task = {t: {"accuracy": v["accuracy"] / v["n"], "reward": v["reward"] / v["n"], "n": v["n"]} for t, v in sums.items()}
    return EvalResult(dict(sorted(per_task.items())), records)


def evaluate_held_out(cfg, model, processor, samples: list[Sample], scorer: Scorer, engine=None) -> EvalResult:
    """`evaluate` as a run's config asks: its budget (`mmrft.config.eval_budget`), prompt format, system prompt and
    media options, and for a multi-turn run (`rollout.tools` / `rollout.environment`) its tools in the prompts and
    a `MultiTurnEngine` around `generate` (or `engine`, e.g. the run's own)."""
    from mmrft.config import eval_budget
    from mmrft.data.collate import media_options
    from mmrft.rollout.multiturn import multi_turn, prompt_tools

    max_new_tokens, batch_size = eval_budget(cfg)
    engine = engine or multi_turn(cfg, HFRolloutEngine(model, processor), model, processor)
    return evaluate(model, processor, samples, scorer, fmt=cfg.data.prompt_format, media=media_options(cfg.data),
                    system=cfg.data.system_prompt, batch_size=batch_size, max_new_tokens=max_new_tokens,
                    engine=engine, tools=prompt_tools(cfg))


def check_benchmarks(cfg) -> None:
    """Fail before training on an `eval.benchmarks` entry that names no adapter or no data directory."""
    from mmrft.errors import ConfigError
    from mmrft.eval.benchmarks import BENCHMARKS

    for i, b in enumerate(cfg.eval.benchmarks):
        where = f"eval.benchmarks[{i}]"
        if b.name not in BENCHMARKS:
            raise ConfigError(f"{where}.name: unknown benchmark {b.name!r}; known: {', '.join(BENCHMARKS.names())}")
        if not b.data or not Path(b.data).is_dir():
            raise ConfigError(f"{where}.data: {b.data!r} is not a directory (the benchmark's released files)")


def evaluate_benchmarks(cfg, model, processor, run_dir: Path, step: int, loaded: dict | None = None) -> dict[str, float]:
    """Greedy run of every `eval.benchmarks` entry on the current policy; results under
    RUN/eval/<name>/step_<step>/; returns `{"bench/<name>/accuracy": ...}` for the tracker. `loaded`: kept by the
    caller between evaluations, so each benchmark's files are read once per run."""
    from mmrft.config import eval_budget
    from mmrft.eval.harness import evaluate_benchmark

    out: dict[str, float] = {}
    max_new_tokens, batch_size = eval_budget(cfg)
    for b in cfg.eval.benchmarks:
        summary = evaluate_benchmark(
            cfg.model.path, b.name, b.data, split=b.split, limit=b.limit, options=dict(b.options),
            max_new_tokens=max_new_tokens, batch_size=batch_size,
            prompt_format=cfg.data.prompt_format, system_prompt=cfg.data.system_prompt,
            out_dir=str(Path(run_dir) / "eval" / b.name / f"step_{step}"), overwrite=True, progress=False,
            model_and_processor=(model, processor), loaded=loaded,
        )
        out[f"bench/{b.name}/accuracy"] = summary["overall"]["accuracy"]
        out[f"bench/{b.name}/skipped"] = float(summary["overall"]["n_skipped"])
    return out


def results_from_metrics(rows: list[dict], held_out: dict[str, list[Sample]], splits: dict[str, str],
                         run_dir: Optional[Path] = None) -> Optional[dict[str, EvalResult]]:
    """The held-out results an earlier run logged (its metric rows of one evaluation): split name -> result, for the
    before/after table of a resumed run, with the per-item records it wrote to `run_dir` where they are there
    (`mmrft.eval.records`). None when nothing was logged or there is no held-out data."""
    if not rows or not any(held_out.values()):
        return None
    results: dict[str, EvalResult] = {}
    for name, samples in held_out.items():
        if not samples:
            continue
        prefix = eval_split_prefix(name, splits)
        counts: dict[str, int] = {}
        for s in samples:
            counts[s.task] = counts.get(s.task, 0) + 1
        path = records_path(run_dir, rows[-1]["step"], name, splits) if run_dir is not None else None
        results[name] = EvalResult({t: {"accuracy": rows[-1].get(f"{prefix}/{t}/accuracy") or 0.0,
                                        "reward": rows[-1].get(f"{prefix}/{t}/reward") or 0.0, "n": n}
                                    for t, n in sorted(counts.items())},
                                   read_records(path) if path is not None and path.is_file() else [])
    return results


def per_task_table(results: Optional[dict[str, EvalResult]], splits: dict) -> Optional[dict]:
    """One task -> metrics table of `results` (split name -> result): a run with one split (`splits` names the run's
    splits) gives its table as it is, several splits theirs keyed `split/task`."""
    if not results:
        return None
    if len(splits) == 1:
        return next(iter(results.values())).per_task
    return {f"{name}/{task}": v for name, res in results.items() for task, v in res.per_task.items()}
