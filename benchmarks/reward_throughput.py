"""Throughput of the built-in reward graders.

For every grader this builds a deterministic set of realistic completions
(``<think>…</think><answer>…</answer>`` wrappers with reasoning of varying
length, chatty plain answers, wrong answers, truncated outputs) with their
samples, then measures completions per second

* **in-process**: calling the reward function directly in a loop;
* **runner**: through ``RewardRunner(name, workers=1)`` (isolated worker process,
  per-call time limit) in batches of ``--batch-size`` (64, the RL step size).
  Worker start-up is timed separately and not counted in the throughput.

Results go to ``--out`` as JSON (written atomically) with the machine info.
Usage::

    .venv/bin/python benchmarks/reward_throughput.py --quick       # ~256 per grader, < 30 s
    .venv/bin/python benchmarks/reward_throughput.py               # 2,000 per grader
    .venv/bin/python benchmarks/reward_throughput.py --graders math,ocr

The machine may be busy (training): the load average at start and end is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from importlib import metadata as importlib_metadata
from typing import Callable, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)



def _import_rewards_only() -> None:
    """Import ``mmrft.rewards`` without running ``mmrft/__init__.py`` (transformers, ~6 s).

    The same trick as ``RewardRunner(fast_start=True)`` uses in its workers; only
    the reward package is measured here.
    """
    import importlib.machinery
    import importlib.util

    if "mmrft" not in sys.modules:
        spec = importlib.machinery.ModuleSpec("mmrft", None, is_package=True)
        spec.submodule_search_locations = [os.path.join(ROOT, "mmrft")]
        sys.modules["mmrft"] = importlib.util.module_from_spec(spec)


_import_rewards_only()
from mmrft.rewards import RewardRunner, get_reward, list_rewards  # noqa: E402

Pair = Tuple[str, dict]

# ----------------------------------------------------------------------------- realistic text

_SENTENCES = [
    "Let me look at the image carefully.",
    "The chart has a title at the top and a legend on the right.",
    "I can see several objects in the scene.",
    "First, I identify the relevant region of the image.",
    "The question asks for a specific value, so I need to be precise.",
    "Counting again to make sure I did not miss anything.",
    "The axis labels are small but readable.",
    "Wait, let me double-check this step.",
    "This matches what I computed before.",
    "Now I combine the two partial results.",
    "The button is located near the top of the screen.",
    "So the final answer follows from the previous step.",
]


def _reasoning(rng: random.Random) -> str:
    n = rng.choice([2, 4, 8, 16, 24])
    return " ".join(rng.choice(_SENTENCES) for _ in range(n))


def _wrap(rng: random.Random, answer: str) -> str:
    """Wrap an answer the way models write it; some are truncated or unformatted."""
    style = rng.random()
    if style < 0.55:
        return f"<think>{_reasoning(rng)}</think><answer>{answer}</answer>"
    if style < 0.70:
        return f"{_reasoning(rng)}\nThe answer is {answer}."
    if style < 0.80:
        return f"<think>{_reasoning(rng)}</think>\n{answer}"
    if style < 0.90:
        return answer
    if style < 0.95:
        return f"<think>{_reasoning(rng)} {answer[: len(answer) // 2]}"  # truncated
    return f"{_reasoning(rng)} I am not sure about this one."


def _s(answer, **md) -> dict:
    return {"answer": answer, "metadata": md}


# ----------------------------------------------------------------------------- per-grader generators

_WORDS = ["Paris", "red", "cat", "bicycle", "Democrats", "Tuesday", "green", "triangle", "London", "apple"]


def gen_text(rng: random.Random, i: int) -> Pair:
    gold = rng.choice(_WORDS)
    pred = gold if rng.random() < 0.6 else rng.choice(_WORDS)
    return _wrap(rng, pred), _s(gold)


def gen_numeric(rng: random.Random, i: int) -> Pair:
    gold = round(rng.uniform(-500, 5000), rng.choice([0, 1, 2]))
    r = rng.random()
    pred = (
        f"{gold:g}" if r < 0.4 else f"{gold:,}" if r < 0.5 else f"\\boxed{{{gold:g}}}" if r < 0.6 else f"{gold * 1.3:g}"
    )
    return _wrap(rng, pred), _s(gold)


def gen_count(rng: random.Random, i: int) -> Pair:
    gold = rng.randint(0, 15)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    r = rng.random()
    k = gold if r < 0.6 else rng.randint(0, 15)
    pred = words[k] if (k < len(words) and rng.random() < 0.3) else f"{k} objects" if rng.random() < 0.5 else str(k)
    return _wrap(rng, pred), _s(gold)


def _math_gold(i: int) -> Tuple[str, List[str], List[str]]:
    """A gold answer unique to item i, its equivalent spellings, and wrong answers (all distinct per i)."""
    kind, k = i % 4, i // 4 + 2
    if kind == 0:  # integer
        n = 1000 + 7 * k
        return str(n), [str(n), f"{n}.0", f"x = {n}"], [str(n + 1), str(2 * n), str(n - 10)]
    if kind == 1:  # reduced fraction k/(2k+1)
        a, b = k, 2 * k + 1
        return (f"\\frac{{{a}}}{{{b}}}", [f"\\frac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}", f"\\frac{{{2 * a}}}{{{2 * b}}}"],
                [f"\\frac{{{b}}}{{{a}}}", f"\\frac{{{a + 1}}}{{{b}}}", f"{a}/{b + 2}"])
    if kind == 2:  # radical k*sqrt(2)
        return (f"{k}\\sqrt{{2}}", [f"{k}\\sqrt{{2}}", f"\\sqrt{{{2 * k * k}}}", f"{k} \\sqrt 2"],
                [f"{k}\\sqrt{{3}}", f"{k + 1}\\sqrt{{2}}", f"\\sqrt{{{2 * k}}}"])
    # polynomial (x + k)^2
    return (f"x^2 + {2 * k}x + {k * k}", [f"(x+{k})^2", f"x^2+{2 * k}x+{k * k}", f"(x + {k})(x + {k})"],
            [f"x^2 + {k * k}", f"(x-{k})^2", f"x^2+{k}x+{k * k}"])


def gen_math(rng: random.Random, i: int) -> Pair:
    """Every item has its own gold, so no two (gold, answer) pairs repeat: the grader's cost without any reuse."""
    gold, right, wrong = _math_gold(i)
    pred = rng.choice(right) if rng.random() < 0.6 else rng.choice(wrong)
    if rng.random() < 0.5:
        pred = f"\\boxed{{{pred}}}"
    return _wrap(rng, pred), _s(gold)


def rl_math_step(rng: random.Random, step: int, prompts: int, group: int, p_correct: float = 0.6) -> Pair:
    """One RL step of math completions: `prompts` new golds x `group` sampled answers each. Within a group the
    answers repeat the way sampled completions do: a correct answer mostly in its most common spelling, wrong
    answers from a few candidates (about 3-4 distinct answers per group of 8)."""
    comps, samples = [], []
    for j in range(prompts):
        gold, right, wrong = _math_gold(step * prompts + j)
        for _ in range(group):
            if rng.random() < p_correct:
                pred = right[0] if rng.random() < 0.7 else rng.choice(right[1:])
            else:
                pred = rng.choice(wrong[:2])
            comps.append(_wrap_answer_only(rng, pred))
            samples.append(_s(gold))
    return comps, samples


def _wrap_answer_only(rng: random.Random, answer: str) -> str:
    """A completion with reasoning and the answer in tags (what an R1-format policy writes)."""
    return f"<think>{_reasoning(rng)}</think><answer>{answer}</answer>"


def gen_format(rng: random.Random, i: int) -> Pair:
    return gen_math(rng, i)


_OPTIONS = ["a cat", "a dog", "a bird", "a horse"]


def gen_choice(rng: random.Random, i: int) -> Pair:
    gold = rng.choice("ABCD")
    letter = gold if rng.random() < 0.6 else rng.choice("ABCD")
    r = rng.random()
    text = _OPTIONS["ABCD".index(letter)]
    pred = letter if r < 0.4 else f"({letter})" if r < 0.6 else f"{letter}. {text}" if r < 0.8 else text
    return _wrap(rng, pred), _s(gold, options=_OPTIONS)


def _box(rng: random.Random, w: int = 640, h: int = 480) -> List[int]:
    x1, y1 = rng.randint(0, w - 60), rng.randint(0, h - 60)
    return [x1, y1, rng.randint(x1 + 10, min(w, x1 + 300)), rng.randint(y1 + 10, min(h, y1 + 300))]


def _jitter(rng: random.Random, box: List[int], amount: int) -> List[int]:
    return [v + rng.randint(-amount, amount) for v in box]


def gen_iou(rng: random.Random, i: int) -> Pair:
    gold = _box(rng)
    pred = _jitter(rng, gold, rng.choice([0, 3, 10, 40]))
    r = rng.random()
    if r < 0.5:
        text = str(pred)
    elif r < 0.8:
        text = json.dumps([{"bbox_2d": pred, "label": "target"}])
    else:
        text = f"({pred[0]},{pred[1]}),({pred[2]},{pred[3]})"
    return _wrap(rng, text), _s(gold, image_size=[640, 480])


_LABELS = ["person", "car", "dog", "red circle", "traffic light", "bicycle"]


def gen_detection(rng: random.Random, i: int) -> Pair:
    gold = [{"label": rng.choice(_LABELS), "bbox": _box(rng)} for _ in range(rng.randint(0, 5))]
    preds = [(g["label"], _jitter(rng, g["bbox"], rng.choice([0, 5, 30]))) for g in gold if rng.random() < 0.8]
    if rng.random() < 0.3:
        preds.append((rng.choice(_LABELS), _box(rng)))
    r = rng.random()
    if r < 0.6:
        text = "```json\n" + json.dumps([{"bbox_2d": b, "label": lab} for lab, b in preds], indent=2) + "\n```"
    elif r < 0.9:
        text = "\n".join(f"{lab}: {b}" for lab, b in preds) or "No objects found."
    else:
        text = "".join(
            f"<|object_ref_start|>{lab}<|object_ref_end|><|box_start|>({b[0]},{b[1]}),({b[2]},{b[3]})<|box_end|>"
            for lab, b in preds
        )
    return _wrap(rng, text), _s(gold, image_size=[640, 480])


_OCR = [
    "STOP", "Coca-Cola", "OPEN 24 HOURS", "Main Street", "$12.50",
    "EXIT", "12/03/2021", "Welcome to Springfield", "No Parking", "ACME Corp",
]  # fmt: skip


def _typo(rng: random.Random, s: str) -> str:
    if not s or rng.random() < 0.5:
        return s
    j = rng.randrange(len(s))
    return s[:j] + rng.choice("abcdefghijklmnopqrstuvwxyz") + s[j + 1 :]


def gen_ocr(rng: random.Random, i: int) -> Pair:
    gold = rng.choice(_OCR)
    pred = _typo(rng, gold) if rng.random() < 0.8 else rng.choice(_OCR)
    if rng.random() < 0.2:
        pred = pred.lower()
    return _wrap(rng, pred), _s(gold if rng.random() < 0.8 else [gold, gold.upper()])


def gen_chart(rng: random.Random, i: int) -> Pair:
    if rng.random() < 0.7:
        gold = round(rng.uniform(0, 100), rng.choice([0, 1]))
        pred = f"{gold * rng.choice([1, 1, 1.02, 1.04, 1.1]):.4g}" + rng.choice(["", "", "%", " million"])
        return _wrap(rng, pred), _s(rng.choice([gold, f"{gold:g}", f"{gold:g}%"]))
    gold = rng.choice(_WORDS)
    return _wrap(rng, gold if rng.random() < 0.6 else rng.choice(_WORDS)), _s(gold)


def gen_gui(rng: random.Random, i: int) -> Pair:
    r = rng.random()
    if r < 0.6:
        box = _box(rng, 1280, 720)
        x = rng.randint(box[0] - 20, box[2] + 20)
        y = rng.randint(box[1] - 20, box[3] + 20)
        forms = [f"click({x}, {y})", f"click(x={x}, y={y})", json.dumps({"action": "click", "coordinate": [x, y]})]
        text = rng.choice(forms)
        return _wrap(rng, text), _s({"action": "click", "bbox": box}, image_size=[1280, 720])
    if r < 0.85:
        gold = rng.choice(["weather in Paris", "hello world", "mmrft github", "cheap flights"])
        typed = gold if rng.random() < 0.7 else rng.choice(["weather", "hello", "flights"])
        text = rng.choice([f'type("{typed}")', f"type(text='{typed}')", json.dumps({"action": "type", "text": typed})])
        return _wrap(rng, text), _s({"action": "type", "text": gold})
    gold = rng.choice(["up", "down"])
    d = gold if rng.random() < 0.7 else rng.choice(["up", "down", "left"])
    text = rng.choice([f"scroll({d})", f"scroll(direction='{d}')"])
    return _wrap(rng, text), _s({"action": "scroll", "direction": gold})


def gen_temporal(rng: random.Random, i: int) -> Pair:
    s = round(rng.uniform(0, 50), 1)
    e = round(s + rng.uniform(1, 20), 1)
    ps, pe = round(s + rng.uniform(-3, 3), 1), round(e + rng.uniform(-3, 3), 1)
    ps = max(ps, 0.0)
    clock = f"00:{ps:04.1f}-00:{pe:04.1f}" if pe < 60 else f"{ps}-{pe}"
    text = rng.choice([f"[{ps}, {pe}]", f"from {ps} to {pe} seconds", f"{ps} - {pe}s", clock])
    return _wrap(rng, text), _s([s, e])


def gen_shaping(rng: random.Random, i: int) -> Pair:
    body = _reasoning(rng)
    if rng.random() < 0.2:
        body = body + (" Wait, let me check again." * rng.randint(10, 200))  # runaway repetition
    return f"<think>{body}</think><answer>3</answer>", _s("3", max_chars=2000)


GENERATORS: Dict[str, Callable[[random.Random, int], Pair]] = {
    "format": gen_format,
    "answer_format": gen_format,
    "exact": gen_text,
    "numeric": gen_numeric,
    "count": gen_count,
    "math": gen_math,
    "choice": gen_choice,
    "iou": gen_iou,
    "detection": gen_detection,
    "ocr": gen_ocr,
    "chart": gen_chart,
    "gui": gen_gui,
    "temporal_iou": gen_temporal,
    "length_penalty": gen_shaping,
    "repetition_penalty": gen_shaping,
}


def build_cases(name: str, n: int, seed: int = 0) -> Tuple[List[str], List[dict]]:
    rng = random.Random(f"{seed}:{name}")
    pairs = [GENERATORS[name](rng, i) for i in range(n)]
    for i, (_, sample) in enumerate(pairs):
        sample["id"] = f"{name}-{i}"
    return [c for c, _ in pairs], [s for _, s in pairs]


# ----------------------------------------------------------------------------- measuring


def _machine() -> dict:
    def version(pkg: str):
        try:
            return importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            return None

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": version("torch"),
        "math_verify": version("math-verify"),
        "sympy": version("sympy"),
        "numpy": version("numpy"),
        "loadavg_start": load,
    }


def bench_inprocess(name: str, comps: List[str], samples: List[dict]) -> dict:
    fn = get_reward(name)
    warm = getattr(fn, "warmup", None)
    if callable(warm):
        warm()
    t0 = time.perf_counter()
    scores = [float(fn(c, s)) for c, s in zip(comps, samples)]
    dt = time.perf_counter() - t0
    return {
        "n": len(comps),
        "seconds": round(dt, 4),
        "completions_per_s": round(len(comps) / dt, 1) if dt > 0 else None,
        "mean_score": round(statistics.fmean(scores), 4) if scores else None,
        "_scores": scores,
    }


def bench_runner(name: str, comps: List[str], samples: List[dict], batch_size: int, timeout_s: float,
                 workers: int = 1) -> dict:
    t0 = time.perf_counter()
    runner = RewardRunner(name, timeout_s=timeout_s, workers=workers)
    try:
        runner.score(comps[:1], samples[:1])  # wait until the worker is up and warm
        startup = time.perf_counter() - t0
        latencies, scores, timeouts, errors = [], [], 0, 0
        for i in range(0, len(comps), batch_size):
            b0 = time.perf_counter()
            batch = runner.score(comps[i : i + batch_size], samples[i : i + batch_size])
            latencies.append(time.perf_counter() - b0)
            scores.extend(batch.components[name])
            timeouts += batch.timeouts
            errors += len(batch.errors)
    finally:
        runner.close()
    total = sum(latencies)
    lat_ms = sorted(x * 1000 for x in latencies)
    return {
        "n": len(comps),
        "batch_size": batch_size,
        "batches": len(latencies),
        "startup_s": round(startup, 3),
        "seconds": round(total, 4),
        "completions_per_s": round(len(comps) / total, 1) if total > 0 else None,
        "batch_ms_p50": round(statistics.median(lat_ms), 2) if lat_ms else None,
        "batch_ms_max": round(lat_ms[-1], 2) if lat_ms else None,
        "timeouts": timeouts,
        "errors": errors,
        "_scores": scores,
    }


def bench_rl_math(steps: int, prompts: int, group: int, workers: int, timeout_s: float, seed: int) -> dict:
    """Math grading as an RL step sees it: batches of `prompts x group` completions, new golds every step."""
    rng = random.Random(f"{seed}:math_rl")
    batches = [rl_math_step(rng, k, prompts, group) for k in range(steps)]
    distinct = [len({c.split("<answer>")[-1] for c in comps[g * group : (g + 1) * group]})
                for comps, _ in batches for g in range(prompts)]
    runner = RewardRunner("math", timeout_s=timeout_s, workers=workers)
    try:
        warm_c, warm_s = rl_math_step(random.Random("warm"), 10_000, 1, workers)
        runner.score(warm_c, warm_s)  # workers up and warm (golds unlike any measured one)
        latencies = []
        for comps, samples in batches:
            b0 = time.perf_counter()
            runner.score(comps, samples)
            latencies.append(time.perf_counter() - b0)
    finally:
        runner.close()
    n = steps * prompts * group
    return {
        "steps": steps, "prompts": prompts, "group": group, "workers": workers, "n": n,
        "distinct_answers_per_group_mean": round(statistics.fmean(distinct), 2),
        "seconds": round(sum(latencies), 4),
        "completions_per_s": round(n / sum(latencies), 1),
        "step_ms_p50": round(1000 * statistics.median(latencies), 1),
        "step_ms_max": round(1000 * max(latencies), 1),
    }


def _write_atomic(path: str, payload: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".reward_throughput.", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "reward_throughput.json"))
    p.add_argument("--n", type=int, default=2000, help="completions per grader (default 2000)")
    p.add_argument("--quick", action="store_true", help="256 completions per grader (well under 30 s)")
    p.add_argument("--graders", default="all", help="comma-separated reward names (default: all built-ins)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--timeout-s", type=float, default=5.0, help="RewardRunner per-call time limit")
    p.add_argument("--no-runner", action="store_true", help="only the in-process measurement")
    p.add_argument("--workers", type=int, default=1, help="RewardRunner worker processes for the per-grader rows")
    p.add_argument("--rl-steps", type=int, default=20,
                   help="RL-shaped math measurement: steps of 8 prompts x 8 completions, with 1 and 2 workers (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    n = 256 if args.quick else args.n
    names = list(GENERATORS) if args.graders == "all" else [g.strip() for g in args.graders.split(",") if g.strip()]
    unknown = [g for g in names if g not in GENERATORS]
    if unknown:
        p.error(f"no generator for {unknown}; known: {sorted(GENERATORS)}")
    missing = sorted(set(names) - set(list_rewards()))
    if missing:
        p.error(f"rewards not registered: {missing}")

    t_start = time.perf_counter()
    machine = _machine()
    results = {}
    print(f"{'grader':<20}{'in-process/s':>14}{'runner/s':>12}{'batch p50 ms':>14}{'start s':>9}  agree")
    for name in names:
        comps, samples = build_cases(name, n, args.seed)
        row = {"chars_mean": round(statistics.fmean(len(c) for c in comps), 1)}
        row["inprocess"] = ip = bench_inprocess(name, comps, samples)
        ip_scores = ip.pop("_scores")
        if not args.no_runner:
            row["runner"] = rr = bench_runner(name, comps, samples, args.batch_size, args.timeout_s, args.workers)
            rr_scores = rr.pop("_scores")
            row["runner"]["agree_with_inprocess"] = sum(a == b for a, b in zip(ip_scores, rr_scores))
        results[name] = row
        r = row.get("runner", {})
        print(
            f"{name:<20}{ip['completions_per_s'] or 0:>14,.0f}{r.get('completions_per_s') or 0:>12,.0f}"
            f"{r.get('batch_ms_p50') or 0:>14.1f}{r.get('startup_s') or 0:>9.2f}  "
            f"{r.get('agree_with_inprocess', '-')}/{n}",
            flush=True,
        )
    if args.rl_steps and "math" in names and not args.no_runner:
        results["math_rl"] = {}
        for workers in (1, 2):
            r = results["math_rl"][f"workers_{workers}"] = bench_rl_math(
                args.rl_steps, 8, 8, workers, args.timeout_s, args.seed)
            print(f"math, RL-shaped steps of 8x8 ({r['distinct_answers_per_group_mean']} distinct answers per group),"
                  f" {workers} worker(s): {r['completions_per_s']:,.0f}/s, step p50 {r['step_ms_p50']} ms", flush=True)
    try:
        machine["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    exe = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else sys.executable
    payload = {
        "benchmark": "reward_throughput",
        "command": " ".join([exe] + sys.argv),
        "created_unix": int(time.time()),
        "config": {
            "n_per_grader": n,
            "quick": args.quick,
            "batch_size": args.batch_size,
            "timeout_s": args.timeout_s,
            "seed": args.seed,
            "workers": args.workers,
            "rl_steps": args.rl_steps,
        },
        "machine": machine,
        "wall_s": round(time.perf_counter() - t_start, 2),
        "results": results,
    }
    _write_atomic(args.out, payload)
    print(f"wrote {args.out} ({payload['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
