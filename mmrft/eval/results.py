"""Aggregate benchmark records into results: accuracy, pass@k, majority vote, per-category tables; write
`results.json` and `results.md`; compare two runs with a paired bootstrap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from mmrft import atomic
from mmrft.errors import MmrftError
from mmrft.eval.records import read_records
from mmrft.eval.stats import accuracy_by_category, majority_vote, paired_bootstrap, pass_at_k

RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
CORRECT = 1.0 - 1e-6  # a sample counts as solved for pass@k when its score is (numerically) 1


def sample_score(rec: dict) -> float:
    """One number per sample: the mean score of its completions (the greedy score when there is one)."""
    return sum(rec["scores"]) / len(rec["scores"])


def pass_ks(k_max: int) -> list[int]:
    """1, 2, 4, ... up to k_max, and k_max itself."""
    ks, k = [], 1
    while k < k_max:
        ks.append(k)
        k *= 2
    return ks + [k_max]


def field_value(sample, name: str) -> Any:
    """The value of field `name` of a sample, for `mmrft eval --by`: `task` is the sample's task; otherwise its
    benchmark category of that name, else its metadata field (None when it has neither)."""
    if name == "task":
        return sample.task
    categories = sample.metadata.get("categories") or {}
    if isinstance(categories, dict) and name in categories:
        return categories[name]
    return sample.metadata.get(name)


def with_fields(records: list[dict], samples: list, by: tuple[str, ...]) -> list[dict]:
    """Copies of `records` (in the order of `samples`) with `fields`: {name: value} for each name in `by`."""
    return [{**r, "fields": {name: field_value(s, name) for name in by}} for r, s in zip(records, samples)]


def accuracy_by_field(records: list[dict], by: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`mmrft eval --by`: {field: {value: {"n", "accuracy"}}} over the scored records, from each record's
    `fields` (see `with_fields`); a record without the field (or None) goes under "(none)", a list value under each
    of its elements."""
    scored = [{"score": sample_score(r), "categories": r.get("fields") or {}} for r in records if "skipped" not in r]
    table = accuracy_by_category(scored, by)
    return {name: table[name] for name in by}  # in the order asked for


def summarize(records: list[dict], meta: dict[str, Any], categories: tuple[str, ...],
              by: tuple[str, ...] = ()) -> dict[str, Any]:
    """The `results.json` content: meta, aggregates, per-category accuracy, skipped samples, records; with `by`
    (fields, see `with_fields`), `by_field`: per value of each field, n and accuracy."""
    scored = [r for r in records if "skipped" not in r]
    skipped = [{"id": r["id"], "reason": r["skipped"]} for r in records if "skipped" in r]
    k = max((len(r["scores"]) for r in scored), default=1)
    overall: dict[str, Any] = {
        "n": len(records), "n_scored": len(scored), "n_skipped": len(skipped),
        "accuracy": sum(sample_score(r) for r in scored) / len(scored) if scored else 0.0,
        "judge_timeouts": sum(r.get("timeouts", 0) for r in scored),
        "truncated": sum(r.get("truncated", 0) for r in scored),  # completions that hit max_new_tokens
    }
    if any("calls" in r for r in scored):  # answered with tools: mean tool calls per answer, and per question
        calls = [c for r in scored for c in r.get("calls", [])]
        overall["tool_calls_per_answer"] = sum(calls) / max(len(calls), 1)
        overall["answers_with_a_call"] = sum(c > 0 for c in calls) / max(len(calls), 1)
    per_sample = []
    for r in scored:
        row = {"id": r["id"], "score": sample_score(r), "categories": r.get("categories", {})}
        if k > 1:
            _, row["majority"] = majority_vote(r["extracted"], r["scores"])
        per_sample.append(row)
    if k > 1:
        for kk in pass_ks(k):
            overall[f"pass@{kk}"] = sum(
                pass_at_k(len(r["scores"]), sum(s >= CORRECT for s in r["scores"]), kk) for r in scored
            ) / max(len(scored), 1)
        overall["majority_accuracy"] = sum(p["majority"] for p in per_sample) / max(len(per_sample), 1)
    by_category = accuracy_by_category(per_sample, categories) if categories else {}
    out = {"meta": meta, "overall": overall, "by_category": by_category, "skipped": skipped,
           "samples": per_sample, "records": records}
    if by:
        out["by_field"] = accuracy_by_field(records, tuple(by))
    return out


def by_field_markdown(summary: dict[str, Any]) -> str:
    """The `--by` tables of a summary (empty without `by_field`): per field, one row per value with n and
    accuracy (percent)."""
    lines: list[str] = []
    for name, table in (summary.get("by_field") or {}).items():
        lines += ["", f"## by {name} (--by)", "", f"| {name} | n | accuracy |", "|---|---|---|"]
        lines += [f"| {value} | {s['n']} | {100 * s['accuracy']:.2f} |" for value, s in table.items()]
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    meta, overall = summary["meta"], summary["overall"]
    lines = [f"# {meta.get('title') or meta['benchmark']}", "",
             f"model `{meta['model']}`, {overall['n_scored']} scored of {overall['n']} samples"
             + (f" ({overall['n_skipped']} skipped: missing or corrupt image)" if overall["n_skipped"] else "")
             + f", {meta['samples']} sample(s) per question, temperature {meta['temperature']}", "",
             "| metric | value |", "|---|---|", f"| accuracy | {100 * overall['accuracy']:.2f} |"]
    for key, val in overall.items():
        if key.startswith("pass@") or key == "majority_accuracy":
            lines.append(f"| {key} | {100 * val:.2f} |")
    if "official_accuracy" in overall:
        lines.append(f"| official accuracy (the benchmark's own aggregate) | {100 * overall['official_accuracy']:.2f} |")
    for key, val in (summary.get("official") or {}).get("average", {}).items():
        if key != "all":
            lines.append(f"| official: {key} | {100 * val:.2f} |")
    if "tool_calls_per_answer" in overall:
        lines.append(f"| tool calls per answer | {overall['tool_calls_per_answer']:.2f} |")
        lines.append(f"| answers with a tool call | {100 * overall['answers_with_a_call']:.2f} |")
    for dim, table in summary["by_category"].items():
        lines += ["", f"## by {dim}", "", f"| {dim} | n | accuracy |", "|---|---|---|"]
        lines += [f"| {value} | {s['n']} | {100 * s['accuracy']:.2f} |" for value, s in table.items()]
    if summary.get("by_field"):
        lines.append(by_field_markdown(summary))
    if meta.get("deviations"):
        lines += ["", f"Scoring vs the official evaluation: {meta['deviations']}"]
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, summary: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    atomic.write_text(out_dir / RESULTS_FILE, json.dumps(summary, indent=1, ensure_ascii=False, default=str))
    atomic.write_text(out_dir / TABLE_FILE, markdown(summary))
    return out_dir / RESULTS_FILE


def load_results(run: Path) -> dict[str, Any]:
    """A `mmrft eval` run's results (its directory or its results.json), or the records of a training run's held-out
    evaluation (`RUN/eval/held_out/step_<N>.jsonl`, `mmrft.eval.records`) as results: each item scored 1 or 0, by
    task."""
    if Path(run).suffix == ".jsonl":
        samples = [{"id": r["id"], "score": float(bool(r["correct"])), "categories": {"task": r.get("task")}}
                   for r in read_records(run)]
        return {"meta": {"benchmark": "held-out data"}, "samples": samples}
    path = Path(run) / RESULTS_FILE if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise MmrftError(f"{path}: no {RESULTS_FILE} (run `mmrft eval ... --out {run}` first)")
    return json.loads(path.read_text(encoding="utf-8"))


def compare(run_a: Path, run_b: Path, *, n_resamples: int = 10000, confidence: float = 0.95,
            seed: int = 0) -> tuple[str, dict[str, Any]]:
    """Per-category deltas B - A on the samples both runs scored, each with a paired-bootstrap confidence interval.
    Returns (Markdown table, the numbers)."""
    a, b = load_results(run_a), load_results(run_b)
    if a["meta"]["benchmark"] != b["meta"]["benchmark"]:
        raise MmrftError(f"cannot compare {a['meta']['benchmark']} with {b['meta']['benchmark']}: different benchmarks")
    sa = {s["id"]: s for s in a["samples"]}
    sb = {s["id"]: s for s in b["samples"]}
    ids = [i for i in sa if i in sb]
    if not ids:
        raise MmrftError(f"{run_a} and {run_b} share no scored sample ids")
    rows: list[dict[str, Any]] = []

    def add(dim: str, value: str, subset: list[str]) -> None:
        res = paired_bootstrap([sa[i]["score"] for i in subset], [sb[i]["score"] for i in subset],
                               n_resamples=n_resamples, confidence=confidence, seed=seed)
        rows.append({"dimension": dim, "value": value, "n": len(subset),
                     "a": sum(sa[i]["score"] for i in subset) / len(subset),
                     "b": sum(sb[i]["score"] for i in subset) / len(subset),
                     "delta": res.delta, "low": res.low, "high": res.high, "p_value": res.p_value})

    add("overall", "all", ids)
    dims = sorted({d for i in ids for d in (sa[i].get("categories") or {})})
    for dim in dims:
        groups: dict[str, list[str]] = {}
        for i in ids:
            vals = (sa[i].get("categories") or {}).get(dim)
            for v in (vals if isinstance(vals, list) else [vals]):
                groups.setdefault(str(v) if v is not None else "(none)", []).append(i)
        for value in sorted(groups):
            add(dim, value, groups[value])
    pct = int(round(100 * confidence))
    lines = [f"{a['meta']['benchmark']}: A = {run_a}, B = {run_b}; {len(ids)} paired samples "
             f"({len(sa) - len(ids)} only in A, {len(sb) - len(ids)} only in B)", "",
             f"| category | n | A | B | Δ (B − A) | {pct}% CI | p |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        name = "overall" if r["dimension"] == "overall" else f"{r['dimension']}: {r['value']}"
        lines.append(f"| {name} | {r['n']} | {100 * r['a']:.2f} | {100 * r['b']:.2f} | {100 * r['delta']:+.2f} | "
                     f"[{100 * r['low']:+.2f}, {100 * r['high']:+.2f}] | {r['p_value']:.3f} |")
    return "\n".join(lines) + "\n", {"paired": len(ids), "rows": rows}


def summary_line(summary: dict[str, Any]) -> str:
    o = summary["overall"]
    extra = "".join(f", {k} {100 * v:.2f}" for k, v in o.items() if k.startswith("pass@") or k == "majority_accuracy")
    if "tool_calls_per_answer" in o:
        extra += f", {o['tool_calls_per_answer']:.2f} tool calls per answer"
    skipped: Optional[str] = f", {o['n_skipped']} skipped" if o["n_skipped"] else ""
    return f"{summary['meta']['benchmark']}: accuracy {100 * o['accuracy']:.2f} on {o['n_scored']} samples{extra}{skipped}"
