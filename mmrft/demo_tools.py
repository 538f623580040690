"""`mmrft demo --modality tools`: does tool use learned by RL pay? The `zoom_named` task asks for a detail (small
circles inside one of four framed cards of a 448-px image, the question naming which) that the tiny model cannot see
at its 112-px input; the `zoom_in` tool returns the named region enlarged. Every recipe starts from the same base: the
tiny model after the image demo's SFT on the `count` task, so that it can see circles, as a pretrained VLM can. Three
recipes on the same data, scored on the same 200 held-out items:

(a) no tools: SFT on the labelled items (the same reasoning, in one turn), then GRPO on fresh items — the model only
    ever sees the whole image at 112 px;
(b) SFT with tools: the labelled items as trajectories (look -> `zoom_in(card)` -> read the crop -> answer);
(c) SFT+GRPO with tools: (b), then GRPO on fresh items where every rollout may call the tool.

Step counts and settings are chosen on a validation split (`val`, its own seed); the test split is scored once per
model, at the end. The table reports accuracy, mean tool calls per answer and the share of useful zooms (IoU >= 0.5
with the card, `mmrft.rewards.trajectory.useful_zooms`). What was tried on the way, measured: docs/tools.md."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from mmrft import atomic
from mmrft.config import Config, eval_splits, load_config
from mmrft.data.prompts import tools_system_text
from mmrft.data.sources import load_samples
from mmrft.data.synthetic import generate_items, task_corpus, tokenizer_corpus, write_dataset
from mmrft.demo import config_path
from mmrft.eval.runner import EvalResult, evaluate_held_out
from mmrft.eval.records import gain_line, paired_gain, write_records
from mmrft.models.grounding import box_to_format
from mmrft.models.load import load_policy, load_processor, resolve_device
from mmrft.models.tiny import make_tiny_model
from mmrft.rewards.scoring import Scorer
from mmrft.rewards.trajectory import useful_zooms
from mmrft.rollout.tool_trajectories import write_zoom_trajectories, zoom_call_text
from mmrft.tools import format_tool_response, tool_schemas
from mmrft.train.data import fit_to_model
from mmrft.train.rl import train_rl
from mmrft.train.sft import train_sft

SEEDS = {"labelled": 1, "rl": 2, "test": 3, "val": 4, "base": 5}
TOOLS = "rollout.tools=[zoom_in]"
RECIPES = {"no_tools": "(a) SFT+GRPO, no tools", "tools_sft": "(b) SFT with tools",
           "tools_grpo": "(c) SFT+GRPO with tools"}
# the gains the demo reports: what GRPO adds to the tool-using model, and what the tools add over the recipe without
GAINS = (("tools_sft", "tools_grpo"), ("no_tools", "tools_grpo"))


def held_out_records(out: str | Path, recipe: str, last: bool = False) -> Path:
    """Where the demo in `out` keeps a recipe's answers on the test items, one line per item (`mmrft.eval.records`);
    `last`: those of the RL recipe's last step's model, when another step's was chosen on validation."""
    return Path(out) / "held_out" / f"{recipe}{'-last' if last else ''}.jsonl"


@dataclass(frozen=True)
class ToolsDemoSpec:
    # the question names where the card is: the tiny models cannot find it from pixels (docs/tools.md)
    task: str = "zoom_named"
    difficulty: int = 0
    n_labelled: int = 256
    n_rl: int = 4096
    # 200 validation items (a standard error of about 3 points, 4.5 with 100): the RL recipes' models are picked by
    # them, among evaluations whose accuracy moves by 10-30 points along one run (docs/tools.md)
    n_val: int = 200
    n_test: int = 200
    # a base model that can count circles, as a pretrained VLM can see (SFT on the `count` task, the image demo's
    # recipe); every recipe starts from it. Empty: the random tiny model itself
    base_sft: tuple[str, ...] = ("sft.steps=600",)
    n_base: int = 256
    # 300 steps: the same validation accuracy with tools as 600 (68 / 69 %), at half the time (docs/tools.md)
    sft: tuple[str, ...] = ("sft.steps=300", "sft.batch_size=16")
    # 200 steps, evaluated every 25 on the validation split; the model tested is the one of the best evaluation
    # (`trainer.save_best`), the last step's is recorded beside it. lr 1e-4: 5e-5, a KL to the SFT model (0.05), a
    # cosine decay, 16 prompts x 100 steps, two minibatches with clip-higher, temperature 1.3, an entropy bonus
    # (0.01) and groups of 16 all held a lower validation level over the second half of training (docs/tools.md).
    # Micro-batches of 16 trajectories, cut to their longest (same gradient as one of 64, in less time)
    rl: tuple[str, ...] = ("trainer.steps=200", "trainer.eval_every=25", "algorithm.micro_batch_size=16",
                           "trainer.save_best=true")
    # the multi-turn budget: a look, then the answer (one spare turn); the tool list left out of the prompts: the
    # tiny model learns the call from its SFT trajectories, and the ~300-token list it cannot read kept it from
    # learning to use the question at all (docs/tools.md)
    turns: tuple[str, ...] = ("rollout.max_turns=3", "rollout.max_tool_calls=2", "rollout.max_images=2",
                              "rollout.max_new_tokens=64", "rollout.max_total_tokens=200", "rollout.tool_list=false")
    no_tool: tuple[str, ...] = ("rollout.max_new_tokens=48",)


SPEC = ToolsDemoSpec()


def tools_corpus(n: int = 200, task: str = "zoom") -> list[str]:
    """Text the tools demo's tokenizer also learns: the zoom task's prompts and reasoning, the tool list as the
    prompt describes it, and tool calls and answers as trajectories write them (Qwen2-VL's 0-1000 boxes)."""
    from mmrft.data.synthetic import get_task

    texts = task_corpus(n, seed=0, tasks=[task]) + [tools_system_text(tool_schemas(["zoom_in"]))]
    for d in get_task(task).difficulties:
        for item in generate_items(task, n // 4, seed=0, difficulty=d):
            box = box_to_format(item.metadata["region"], "norm1000", item.image.size)
            texts.append(zoom_call_text(box, item.metadata["rationale"]))
            texts.append(item.metadata["zoomed_rationale"])
            texts.append(format_tool_response(f"Zoomed in on image 0 at {item.metadata['region']} (pixels); this "
                                              "is image 1."))
    return texts


def _one_turn_labels(src: Path, out: Path) -> Path:
    """The labelled items for the recipe without tools: the same reasoning in one turn (where the frame is, then
    where each circle sits in it), the images shared with `src`."""
    rows = []
    for s in load_samples(src):
        row = s.to_row(out)
        row["metadata"]["rationale"] = f"{s.metadata['rationale']}; {s.metadata['zoomed_rationale']}"
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "data.jsonl"
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def score_checkpoint(overrides: list[str]) -> tuple[EvalResult, dict]:
    """A checkpoint on `data.eval` as the config given by `overrides` evaluates it (its tools, its budget), with
    the mean tool calls per answer and the useful share of its zooms."""
    cfg = load_config(config_path("demo_grpo.yaml"), overrides)
    model, processor = load_policy(cfg.model, resolve_device())
    samples = fit_to_model([s for path in eval_splits(cfg).values() for s in load_samples(path)], cfg, model,
                           processor, "data.eval")
    res = evaluate_held_out(cfg, model, processor, samples, Scorer.from_config(cfg))
    metadata = {s.id: s.metadata for s in samples}
    calls = useful = zooms = 0
    for r in res.records:
        t = r.get("trajectory") or {}
        calls += len(t.get("calls", []))
        u, z = useful_zooms({"metadata": metadata[r["id"]], "trajectory": t})
        useful, zooms = useful + u, zooms + z
    n = max(1, len(res.records))
    return res, {"calls_per_answer": calls / n, "useful_zoom_share": useful / zooms if zooms else None,
                 "zooms": zooms}


def tools_table(rows: list[tuple[str, dict, dict]], task: str = "zoom") -> str:
    """One line per recipe: accuracy on the test split, tool calls per answer, useful zooms."""
    head = ("recipe", "n", "accuracy", "calls/answer", "useful zooms")
    lines = [head]
    for name, per_task, tools in rows:
        z = per_task[task]
        share = tools.get("useful_zoom_share")
        lines.append((name, str(z["n"]), f"{100 * z['accuracy']:.1f}%", f"{tools['calls_per_answer']:.2f}",
                      "-" if share is None else f"{100 * share:.0f}%"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(lines[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines[1:]])


def selection_note(results: dict, names: dict[str, str], task: str) -> str:
    """Under the table: which step's model each RL recipe is (chosen on validation), and its last step's accuracy."""
    lines = []
    for key, r in results.items():
        if r.get("selected_step") is not None:
            last = r["last_step_per_task"][task]["accuracy"]
            lines.append(f"{names[key][:3]} the model of step {r['selected_step']}, best on validation "
                         f"({100 * r['val_accuracy']:.0f}%); its last step ({r['last_step']}): {100 * last:.1f}%")
    return "".join("\n" + line for line in lines)


def gain_note(gains: dict[str, dict], names: dict[str, str]) -> str:
    """Under the table, one line per gain, e.g. '(c) - (b): +9.0 points (95 % paired bootstrap interval +1.0 to
    +17.0, 200 items)'."""
    lines = []
    for pair, g in gains.items():
        a, b = pair.split("->")
        lines.append(gain_line(f"{names[b][:3]} - {names[a][:3]}", g))
    return "".join("\n" + line for line in lines)


def _train_selected(cfg: Config) -> dict:
    """Train an RL recipe; the model to test is the one of its best validation evaluation (`trainer.save_best`),
    the last step's is recorded beside it."""
    result = train_rl(cfg)
    best, last = result.get("best"), result["checkpoint"]
    if best is None:
        return {"checkpoint": last}
    return {"checkpoint": last if best["step"] == cfg.trainer.steps else best["checkpoint"],
            "selected_step": best["step"], "val_accuracy": best["accuracy"], "last_step": cfg.trainer.steps,
            "last_checkpoint": last}


def run_tools_demo(out: str | Path = "runs/demo-tools", quick: bool = False, overrides: list[str] | tuple = (),
                   seed: int = 0, spec: ToolsDemoSpec = SPEC) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(f"[1/6] tiny qwen2_vl, its tokenizer also trained on the zoom task and tool text -> {out / 'model'}")
    # a vocabulary of 1,024 (the other demos: 512), so that a tool call is about 50 tokens rather than 80
    corpus = tokenizer_corpus() + tools_corpus(task=spec.task)
    model_dir = make_tiny_model(out / "model", arch="qwen2_vl", corpus=corpus,
                                seed=seed, overwrite=True, vocab_size=1024)

    print(f"[2/6] synthetic '{spec.task}' data (difficulty {spec.difficulty}, 448 px, seen at 112): {spec.n_labelled} "
          f"labelled, {spec.n_rl} for RL, {spec.n_val} validation, {spec.n_test} held out")
    data = {}
    for split, n in (("labelled", spec.n_labelled), ("rl", spec.n_rl), ("val", spec.n_val), ("test", spec.n_test)):
        n = min(n, 32) if quick else n
        data[split] = write_dataset(spec.task, n, out / "data" / split, seed=SEEDS[split],
                                    difficulty=spec.difficulty)
    trajectories = write_zoom_trajectories(data["labelled"], out / "data" / "labelled-tools",
                                           load_processor(str(model_dir)), "norm1000")
    one_turn = _one_turn_labels(data["labelled"], out / "data" / "labelled-one-turn")

    quick_sft = ["sft.steps=5"] if quick else []
    quick_rl = ["trainer.steps=2", "trainer.eval_every=0"] if quick else []
    common = [f"trainer.seed={seed}", "trainer.overwrite=true", f"data.eval={data['val']}"]
    stages = {}

    base = model_dir
    if spec.base_sft:
        print(f"[base] the base model learns to count circles: SFT on {spec.n_base} `count` scenes, the image demo's "
              "recipe (as a pretrained VLM can see); every recipe below starts from it")
        counting = write_dataset("count", min(spec.n_base, 32) if quick else spec.n_base, out / "data" / "base-count",
                                 seed=SEEDS["base"])
        base = train_sft(load_config(config_path("demo_sft.yaml"), [
            f"model.path={model_dir}", f"data.train={counting}", f"trainer.output_dir={out / 'base-count'}",
            f"trainer.seed={seed}", "trainer.overwrite=true", *spec.base_sft, *quick_sft]))["checkpoint"]

    print("[3/6] (a) without tools: SFT on the labelled items, then GRPO on fresh ones")
    sft_a = train_sft(load_config(config_path("demo_sft.yaml"), [
        f"model.path={base}", f"data.train={one_turn}", f"trainer.output_dir={out / 'no-tools-sft'}", *common,
        *spec.no_tool, *spec.sft, *quick_sft]))
    stages["no_tools"] = (_train_selected(load_config(config_path("demo_grpo.yaml"), [
        f"model.path={sft_a['checkpoint']}", f"data.train={data['rl']}", f"trainer.output_dir={out / 'no-tools-grpo'}",
        *common, *spec.no_tool, *spec.rl, *quick_rl, *overrides])), list(spec.no_tool))

    print("[4/6] (b) SFT with tools on the labelled items as trajectories (look -> zoom_in -> answer)")
    sft_b = train_sft(load_config(config_path("demo_sft.yaml"), [
        f"model.path={base}", f"data.train={trajectories}", f"trainer.output_dir={out / 'tools-sft'}", TOOLS,
        *common, *spec.turns, *spec.sft, *quick_sft]))
    stages["tools_sft"] = ({"checkpoint": sft_b["checkpoint"]}, [TOOLS, *spec.turns])

    print("[5/6] (c) GRPO with tools from (b) on fresh items")
    stages["tools_grpo"] = (_train_selected(load_config(config_path("demo_grpo.yaml"), [
        f"model.path={sft_b['checkpoint']}", f"data.train={data['rl']}", f"trainer.output_dir={out / 'tools-grpo'}",
        TOOLS, *common, *spec.turns, *spec.rl, *quick_rl, *overrides])), [TOOLS, *spec.turns])

    print(f"[6/6] the {spec.n_test} held-out items, once per model (greedy)")
    results, rows, scored = {}, [], {}
    for key, (chosen, settings) in stages.items():
        res, tools = score_checkpoint([f"model.path={chosen['checkpoint']}", f"data.eval={data['test']}", *settings])
        results[key], scored[key] = {**chosen, "per_task": res.per_task, **tools}, res
        results[key]["records"] = str(write_records(held_out_records(out, key), res.records))
        if chosen.get("last_step") is not None:  # the run's last model, for the record (not chosen on validation)
            last = score_checkpoint([f"model.path={chosen['last_checkpoint']}", f"data.eval={data['test']}",
                                     *settings])[0] if chosen["selected_step"] != chosen["last_step"] else res
            results[key]["last_step_per_task"] = last.per_task
            results[key]["last_step_records"] = str(write_records(held_out_records(out, key, last=True),
                                                                  last.records))
        rows.append((RECIPES[key], res.per_task, tools))
    # what GRPO adds to the tool-using model, and what the tools add over the recipe without them
    gains = {f"{a}->{b}": paired_gain(scored[a].records, scored[b].records) for a, b in GAINS}
    table = tools_table(rows, spec.task) + selection_note(results, RECIPES, spec.task) + gain_note(gains, RECIPES)
    minutes = (time.time() - t0) / 60
    print(table)
    print(f"\nrun directory: {out}\ntotal time: {minutes:.1f} min")
    result = {"modality": "tools", "task": spec.task, "difficulty": spec.difficulty, "seed": seed, "minutes": minutes,
              "results": results, "gains": gains,
              "settings": {"sft": list(spec.sft), "rl": list(spec.rl), "turns": list(spec.turns),
                           "base_sft": list(spec.base_sft), "overrides": list(overrides)}}
    atomic.write_text(out / "demo_results.json", json.dumps(result, indent=2))
    atomic.write_text(out / "demo_table.txt", table + "\n")
    return result
