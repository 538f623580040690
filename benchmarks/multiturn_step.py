"""One multi-turn GRPO step with an image-returning tool, mmrft vs Hugging Face TRL's `GRPOTrainer`: same tiny
Qwen2-VL policy that calls `zoom_in`, same counting prompts, same tool, same limits.

    python benchmarks/multiturn_step.py [--size tiny|small] [--steps N] [--warmup W] [--rounds R] [--out PATH]
                                        [--frameworks mmrft mmrft-prefill mmrft-generate trl] [--prompts P] [--group G]
                                        [--max-tokens T] [--tool-rounds K] [--micro-batch M]

What runs. The four runs (mmrft, mmrft-prefill, mmrft-generate, TRL; see below) train the same policy on the same
prompts, in turn, each in a fresh subprocess per round (`multiturn_step_mmrft.py`, `multiturn_step_trl.py`; the
order flips between rounds), W warm-up steps (left out of the figures) then N measured steps. Every rollout is a
multi-turn trajectory: the policy writes `<tool_call>{"name": "zoom_in", ...}</tool_call>`, the tool returns a crop
of the image (a new image the policy reads in the next turn), the policy continues, until it answers or K tool
rounds were run.

The policy (option (a) of the issue: the real tool path, no forcing). A random tiny model never writes a tool call,
so `prepare` builds one that does, once, cached under benchmarks/results/multiturn_step/<size>/:
  1. the tiny Qwen2-VL (`mmrft.models.tiny`, seed 0; the tokenizer also trained on the tool prompt's text so that the
     tool list is not hundreds of byte tokens) with the Qwen3-VL chat template (TRL's copy, `trl/chat_templates/
     qwen3_vl.jinja`, the template Qwen3-VL checkpoints ship): TRL 1.16 refuses the Qwen2-VL template for tools
     (`supports_tool_calling` is False: it drops `tool_calls`; grpo_trainer.py:650) and parses calls only for the
     templates `add_response_schema` knows (chat_template_utils.py:686), Qwen3-VL's among them. The image tokens
     are Qwen2-VL's, so the architecture is unchanged;
  2. `mmrft sft` on counting scenes whose trajectory calls `zoom_in` on the whole image, reads the tool's real answer
     (the crop), then answers `<think>…</think><answer>n</answer>` (as tests/e2e/tool_data.py does).

The work is the same on both sides (every knob is listed under "mapping" in the JSON): P prompts x G trajectories,
at most T response tokens per trajectory (tool turns included) and at most K tool rounds (K+1 assistant turns),
temperature 1, Dr. GRPO, no KL, one on-policy AdamW step, fp32, the tool turns masked from the loss, the same tool
code (mmrft's `zoom_in` through `mmrft.tools.run_tool_call`, with the same `ToolContext`), the same prompt tokens
(TRL renders the tool list from mmrft's schema; checked, `same_prompt_ids` in the JSON), the same tool-turn text,
mmrft's `count` grader on the final answer.

The learning rate (`--lr`, default 1e-9). Every step computes and applies the full update, but the policy does not
move, so each step's work stays what the prepared policy does. At 1e-4, TRL's policy stopped calling the tool within
4 steps (calls per trajectory 0.72, 0.36, 0.06, 0.03, 0.00) while mmrft's kept calling it (0.84-0.98): TRL's steps
got shorter because they did less, and seconds per step no longer compared the same work. The two sides still differ
in one way, by design: a call mmrft cannot run (malformed JSON, bad arguments) gets an error message as the tool's
answer and the trajectory goes on (issue 17), while TRL ends the trajectory on a call it cannot parse; so mmrft's
trajectories hold more turns than TRL's (returned images per trajectory are equal).

KV-cache continuation vs re-prefill. mmrft runs twice: `mmrft` (its default, `rollout.reuse_turn_cache=true`: each
trajectory continues from its KV cache, only the tool turn is fed, its new image encoded once) and `mmrft-prefill`
(`reuse_turn_cache=false`: the whole sequence, prompt, turns and every image, prefilled again before each assistant
turn). TRL 1.16 always prefills again (`_tool_call_loop` calls `generate` on prompt + completion + tool-suffix ids
and processes every image again). With the same seed the two mmrft runs draw the same trajectories (their token
counts are equal) unless floating-point differences flip a sample.

Sampling loop vs `generate`. `mmrft-generate` is mmrft's default run with `rollout.decoder=generate`: transformers'
`generate`, which steps every row until the last one of the turn ends, instead of mmrft's loop
(`mmrft/rollout/decode.py`), from which a row leaves the batch and its KV cache as soon as it ends. TRL samples with
`generate`.

Figures per framework: seconds per step (median/min/max of the measured steps of all rounds; mmrft's `time/step`,
TRL's on_step_begin -> on_step_end) and the wall interval between step ends, the split (rollout, reward, prepare,
update), policy tokens per step (tool tokens excluded) and all response tokens (tool turns included), assistant
turns / tool calls / returned images per trajectory, peak RSS (main process and process tree), mean reward, and
mmrft/TRL = ratio of the median seconds per step (the issue's target: <= 0.5; `mmrft_over_trl_step_s`, mmrft's
default against TRL; `mmrft_prefill_over_trl_step_s`; `continuation_over_prefill_step_s`). Written atomically to
`--out` (default benchmarks/results/multiturn_step/multiturn_step_<size>.json), and printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from rl_step import TreeRSS, _count_params, _fmt, _med, _stats, prompt_order, write_json

HERE = Path(__file__).resolve().parent
RESULTS = Path("benchmarks/results/multiturn_step")
TASK = "count"
TOOL = "zoom_in"
MODEL_SEED = 0
SFT_DATA_SEED = 1  # labelled scenes for the tool-use cold start
DATA_SEED = 2  # the RL scenes (the demo's RL split seed)
VOCAB = 1024
SFT = {"rows": 128, "steps": 200, "batch_size": 16, "lr": 3e-3}  # as tests/e2e/test_tools.py, on more scenes
# mmrft: its default, KV-cache continuation across turns (rollout.reuse_turn_cache=true); mmrft-prefill: the same
# run with every running trajectory prefilled again at each turn (reuse_turn_cache=false), as TRL does;
# mmrft-generate: mmrft's default with transformers' `generate` instead of mmrft's sampling loop (rollout.decoder)
FRAMEWORKS = ("mmrft", "mmrft-prefill", "mmrft-generate", "trl")
CHILD = {"mmrft": HERE / "multiturn_step_mmrft.py", "mmrft-prefill": HERE / "multiturn_step_mmrft.py",
         "mmrft-generate": HERE / "multiturn_step_mmrft.py", "trl": HERE / "multiturn_step_trl.py"}
VARIANT_SET = {"mmrft": ["rollout.reuse_turn_cache=true"], "mmrft-prefill": ["rollout.reuse_turn_cache=false"],
               "mmrft-generate": ["rollout.reuse_turn_cache=true", "rollout.decoder=generate"]}
ZOOM_ALL = [0, 0, 1000, 1000]  # the whole image in Qwen2-VL's 0-1000 box grid

KV_CACHE = ("mmrft continues each trajectory from its KV cache by default (rollout.reuse_turn_cache=true, "
            "mmrft/rollout/continuation.py: only the tool turn is fed, its new image encoded once); 'mmrft-prefill' "
            "is the same run with reuse_turn_cache=false (the whole sequence, prompt, turns and every image, prefilled "
            "again before each assistant turn). TRL 1.16 always prefills again: _tool_call_loop (grpo_trainer.py:1945) "
            "calls generate on prompt + completion + tool-suffix ids, with every image processed again "
            "(grpo_trainer.py:2083-2087)")

MAPPING = {
    "prompts per step P": ["rollout.prompts_per_step=P",
                           "generation batch P*G = per_device_train_batch_size x steps_per_generation"],
    "trajectories per prompt G": ["rollout.group_size=G", "num_generations=G"],
    "tool": ["rollout.tools=[zoom_in] (built-in, mmrft/tools/vision.py) via ToolEnvironment -> run_tool_call",
             "environment_factory=ZoomEnv whose zoom_in(**arguments) calls the same mmrft.tools.run_tool_call with "
             "the ToolContext mmrft builds (images, box_format norm1000, model sizes, the processor's pixel limits)"],
    "tool schema in the prompt": ["mmrft.tools.tool_schemas(['zoom_in']) through the chat template's tools=",
                                  "the same schema: transformers.get_json_schema is given it for ZoomEnv.zoom_in "
                                  "(TRL would derive one from the docstring); prompt ids checked equal"],
    "tool answer": ["ToolEnvironment's <tool_response> block + the crop; for this template (which wraps tool "
                    "messages itself) one unwrapped `tool` message",
                    "content [crop image, {'type': 'text', 'text': text}], a `tool` message the template wraps "
                    "(same order as mmrft's; the template writes the same tokens)"],
    "call parsing": ["mmrft.tools.parse_tool_calls (<tool_call> JSON blocks)",
                     "tokenizer.parse_response with TRL's qwen3 response template (add_response_schema)"],
    "tool rounds K": ["rollout.max_turns=K+1 (max_tool_calls=4K, max_images=4K: not binding)",
                      "max_tool_calling_iterations=K"],
    "response tokens T per trajectory (tool turns included)": [
        "rollout.max_total_tokens=T, rollout.max_new_tokens=T (a turn may use what is left)",
        "max_completion_length=T (generate may draw up to T per turn; the excess is cut)"],
    "sampling": ["rollout.temperature=1.0 top_p=1.0 top_k=0", "temperature=1.0 top_p=1.0 top_k=0"],
    "suppressed tokens while sampling": ["media placeholder ids (mmrft.models.load.media_token_ids)",
                                         "generation_kwargs={'suppress_tokens': the same ids}"],
    "loss mask": ["policy tokens only (tool turns 0)", "completion_mask * tool_mask (tool turns 0)"],
    "advantage / loss": ["algorithm.name=dr_grpo, loss_agg_mode=seq-mean-token-sum-norm",
                         "scale_rewards='none', loss_type='dr_grpo'"],
    "policy loss": ["ppo_clip 0.2/0.2", "epsilon=0.2"],
    "KL": ["kl_coef=0 (no reference model)", "beta=0.0"],
    "updates per batch": ["ppo_epochs=1, minibatches=1, micro_batch_size=M (--micro-batch, default P*G)",
                          "num_iterations=1, per_device_train_batch_size=M, "
                          "steps_per_generation=gradient_accumulation_steps=P*G/M (one optimizer step)"],
    "optimizer": ["AdamW lr=--lr wd=0, constant, max_grad_norm=1.0",
                  "adamw_torch lr=--lr wd=0, constant, max_grad_norm=1.0"],
    "precision / checkpointing": ["float32, no activation checkpointing", "float32, gradient_checkpointing=False"],
    "reward": ["count (mmrft.rewards) on the last assistant turn, reward worker (mmrft's default)",
               "mmrft's count grader on the last assistant message (<think>reasoning</think> + content) in-process"],
    "prompt": ["build_messages(prompt, 1, 'r1') + the chat template with tools",
               "the same messages + 'image' column; TRL applies the same template with tools"],
    "data order": ["mmrft's PromptSampler, seed S", "dataset rows laid out in that order, shuffle_dataset=False"],
    "device / threads": ["CPU, trainer.threads=N", "use_cpu=True, torch.set_num_threads(N)"],
    "seed": ["trainer.seed=S", "seed=S"],
}


# ----------------------------------------------------------------------------------------------- set-up


def qwen3_vl_template() -> str:
    """TRL's copy of the Qwen3-VL chat template (renders tools=, tool_calls and `tool` messages with images)."""
    from importlib import resources

    try:
        return (resources.files("trl") / "chat_templates" / "qwen3_vl.jinja").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        raise SystemExit("multiturn_step.py takes its chat template from TRL: pip install -e '.[bench]'") from None


def tool_corpus(schemas: list[dict], weight: int = 200) -> list[str]:
    """The text every tool prompt and trajectory carries (the tool list, the call, the tool turn), repeated: for the
    tiny tokenizer, so that these become few tokens as they would with a real tokenizer."""
    from mmrft.data.prompts import tools_system_text

    call = "<tool_call>\n" + json.dumps({"name": TOOL, "arguments": {"bbox_2d": ZOOM_ALL}}) + "\n</tool_call>"
    tool_turn = "<tool_response>\nZoomed in on image 0 at [0, 0, 112, 112] (pixels); this is image 1.\n</tool_response>"
    return [tools_system_text(schemas), "<think>look closer</think>\n" + call, tool_turn] * weight


def build_base_model(out: Path, size: str) -> None:
    from transformers import AutoProcessor

    from mmrft.data.synthetic import tokenizer_corpus
    from mmrft.models.tiny import make_tiny_model
    from mmrft.tools import tool_schemas

    corpus = tokenizer_corpus() + tool_corpus(tool_schemas([TOOL]))
    make_tiny_model(out, arch="qwen2_vl", size=size, corpus=corpus, seed=MODEL_SEED, vocab_size=VOCAB,
                    overwrite=True)
    template = qwen3_vl_template()
    processor = AutoProcessor.from_pretrained(str(out))
    processor.chat_template = template
    processor.tokenizer.chat_template = template
    processor.save_pretrained(str(out))


def tool_context(processor, image, box_format: str = "norm1000"):
    """The `ToolContext` mmrft's `MultiTurnEngine._environment` builds for a sample with one image."""
    from mmrft.models.grounding import model_image_size
    from mmrft.tools import ToolContext

    limits = getattr(getattr(processor, "image_processor", None), "size", None) or {}
    return ToolContext(images=[image], returned=[], box_format=box_format,
                       model_sizes=[model_image_size(processor, *image.size)],
                       max_pixels=limits.get("longest_edge"), min_pixels=limits.get("shortest_edge"))


def write_sft_data(src: Path, out: Path, model_dir: Path) -> Path:
    """`src`'s scenes, each with a trajectory: call zoom_in on the whole image, read the tool's real answer (run
    through mmrft's tool runner, wrapped as ToolEnvironment wraps it), then answer with the grounded rationale."""
    from PIL import Image
    from transformers import AutoProcessor

    from mmrft.data.sources import load_samples
    from mmrft.tools import ToolCall, run_tool_call
    from mmrft.tools.prompting import format_tool_response

    processor = AutoProcessor.from_pretrained(str(model_dir))
    out.mkdir(parents=True, exist_ok=True)
    (out / "crops").mkdir(exist_ok=True)
    call = ToolCall(TOOL, {"bbox_2d": ZOOM_ALL}, "")
    call_text = "<think>look closer</think>\n<tool_call>\n" + json.dumps(
        {"name": TOOL, "arguments": call.arguments}) + "\n</tool_call>"
    rows = []
    for s in load_samples(src):
        image = Image.open(s.images[0]).convert("RGB")
        answer = run_tool_call(call, tool_context(processor, image), allowed=[TOOL])
        assert answer.error is None, answer.text
        crop = f"crops/{s.id}.png"
        answer.images[0].save(out / crop)
        row = s.to_row(out)
        row["trajectory"] = [
            {"role": "assistant", "content": call_text},
            {"role": "tool", "content": format_tool_response(answer.text), "images": [crop]},
            {"role": "assistant", "content": f"<think>{s.metadata['rationale']}</think><answer>{s.answer}</answer>"},
        ]
        rows.append(row)
    (out / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def prepare(size: str, n_rows: int, workdir: Path, threads: int) -> tuple[Path, Path, dict]:
    """The tool-calling policy (base model + SFT, built once) and the RL scenes, reused when already built with the
    same settings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmrft.data.synthetic import write_dataset
    from mmrft.models.tiny import SIZES

    spec = SIZES[size]
    want = {"arch": "qwen2_vl", "size": size, "seed": MODEL_SEED, "vocab": VOCAB, "template": "qwen3_vl",
            "sft": SFT, "sft_data_seed": SFT_DATA_SEED, "tool": TOOL, "zoom": ZOOM_ALL}
    policy = workdir / "policy"
    key = policy / "bench_key.json"
    have = json.loads(key.read_text()) if key.is_file() else {}
    sft_info = have.pop("sft_run", None)
    if have != want:
        t0 = time.perf_counter()
        base = workdir / "base"
        print(f"building the {size} model with the Qwen3-VL chat template in {base}", flush=True)
        build_base_model(base, size)
        labelled = write_dataset(TASK, SFT["rows"], workdir / "sft_scenes", seed=SFT_DATA_SEED,
                                 image_size=spec.image_size)
        sft_data = write_sft_data(Path(labelled).parent, workdir / "sft_data", base)
        print(f"SFT on {SFT['rows']} tool-using trajectories ({SFT['steps']} steps; a few minutes on 2 cores)",
              flush=True)
        from mmrft.config import load_config
        from mmrft.train.sft import train_sft

        res = train_sft(load_config(None, [
            f"model.path={base.resolve()}", f"data.train={sft_data.resolve()}", f"rollout.tools=[{TOOL}]",
            f"trainer.output_dir={(workdir / 'sft').resolve()}", "trainer.overwrite=true",
            f"sft.steps={SFT['steps']}", f"sft.batch_size={SFT['batch_size']}", f"sft.lr={SFT['lr']}",
            f"trainer.threads={threads}", "trainer.progress=false", "tracking.tensorboard=false"]))
        if policy.exists():
            shutil.rmtree(policy)
        shutil.copytree(res["checkpoint"], policy)
        sft_info = {"seconds": time.perf_counter() - t0, "final_loss": res.get("loss")}
        write_json(key, {**want, "sft_run": sft_info})
    data_dir = workdir / "data"
    dkey = data_dir / "bench_key.json"
    dwant = {"task": TASK, "seed": DATA_SEED, "image_size": spec.image_size}
    old = json.loads(dkey.read_text()) if dkey.is_file() else {}
    fresh = {k: old.get(k) for k in dwant} == dwant and old.get("n", 0) >= n_rows
    if not (fresh and (data_dir / "data.jsonl").is_file()):
        print(f"writing {n_rows} '{TASK}' scenes ({spec.image_size} px) to {data_dir}", flush=True)
        write_dataset(TASK, n_rows, data_dir, seed=DATA_SEED, image_size=spec.image_size)
        write_json(dkey, {**dwant, "n": n_rows})
    info = {"path": str(policy), "arch": "qwen2_vl", "size": size,
            "parameters": _count_params(policy / "model.safetensors"),
            "vocab_size": VOCAB, "chat_template": "Qwen3-VL (trl/chat_templates/qwen3_vl.jinja)",
            "image_size": spec.image_size, "hidden": spec.hidden, "layers": spec.layers,
            "vision_depth": spec.vision_depth,
            "policy": f"mmrft sft, {SFT['steps']} steps x {SFT['batch_size']} on {SFT['rows']} counting scenes whose "
                      f"trajectory calls {TOOL}({ZOOM_ALL}) then answers", "sft_run": sft_info}
    return policy, data_dir, info


# ----------------------------------------------------------------------------------------------- children


def run_child(framework: str, spec: dict, workdir: Path, round_no: int, position: int) -> dict:
    tag = f"{framework}-r{round_no}"
    runs = workdir / "runs"
    spec_path, result_path, log_path = runs / f"{tag}.spec.json", runs / f"{tag}.result.json", runs / f"{tag}.log"
    result_path.unlink(missing_ok=True)
    spec = {**spec, "mmrft_set": VARIANT_SET.get(framework, []) + list(spec.get("mmrft_set", []))}
    write_json(spec_path, {**spec, "run_dir": str(runs / tag)})
    threads = str(spec["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": "",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    cmd = [sys.executable, str(CHILD[framework]), str(spec_path), str(result_path)]
    print(f"round {round_no}: {framework} ...", flush=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    import subprocess

    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
        with TreeRSS(proc.pid) as tree:
            code = proc.wait()
    wall = time.perf_counter() - t0
    if code != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{framework} run (round {round_no}) failed with exit code {code}; log {log_path}:\n{tail}")
    res = json.loads(result_path.read_text())
    res.update(round=round_no, position=position, wall_s=wall, peak_tree_rss_mb=tree.peak / 2**20 or None,
               load_avg_before=load_before, load_avg_after=os.getloadavg(), log=str(log_path))
    return res


TRAJ_KEYS = ("turns", "tool_calls", "images", "failed_calls")


def summarise(rounds: list[dict], trajectories: int) -> dict:
    measured = [s for r in rounds for s in r["steps"] if not s["warmup"]]
    step_s = [s["step_s"] for s in measured]
    med = _med(step_s)
    return {
        "step_s": _stats(step_s),
        "interval_s": _stats([s["interval_s"] for s in measured if s.get("interval_s") is not None]),
        "trajectories_per_s": trajectories / med if med else None,
        "policy_tokens_per_step": _med([s["policy_tokens"] for s in measured]),
        "response_tokens_per_step": _med([s["response_tokens"] for s in measured]),
        "policy_tokens_per_s": _med([s["policy_tokens"] / s["step_s"] for s in measured]),
        "rollout_policy_tokens_per_s": _med([s["policy_tokens"] / s["rollout_s"] for s in measured
                                             if s.get("rollout_s")]),
        "per_trajectory": {k: _med([s.get(k) for s in measured]) for k in TRAJ_KEYS},
        "time_split_s": {k: _med([s.get(f"{k}_s") for s in measured]) for k in ("rollout", "reward", "prepare",
                                                                                 "update")},
        "peak_rss_mb": max(r["rusage_mb"]["self"] for r in rounds),
        "peak_rss_children_mb": max(r["rusage_mb"]["children"] for r in rounds),
        "peak_tree_rss_mb": max((r["peak_tree_rss_mb"] or 0) for r in rounds) or None,
        "startup_s": _med([r.get("startup_s") for r in rounds]),
        "torch_threads": sorted({r.get("torch_threads") for r in rounds}),
        "reward_mean_measured": statistics.fmean(s["reward_mean"] for s in measured) if measured else None,
        "reward_mean_by_step": [[s["reward_mean"] for s in r["steps"]] for r in rounds],
        "turns_by_step": [[s.get("turns") for s in r["steps"]] for r in rounds],
    }


def table(res: dict) -> str:
    head = ["framework", "s/step med", "min", "max", "interval", "traj/s", "policy tok", "all tok", "turns",
            "calls", "images", "rollout", "reward", "prepare", "update", "peak RSS MB", "tree RSS MB", "reward"]
    rows = [head]
    for fw, r in res["frameworks"].items():
        s, t, pt = r["summary"], r["summary"]["time_split_s"], r["summary"]["per_trajectory"]
        rows.append([fw, _fmt(s["step_s"]["median"]), _fmt(s["step_s"]["min"]), _fmt(s["step_s"]["max"]),
                     _fmt(s["interval_s"]["median"]), _fmt(s["trajectories_per_s"], ".1f"),
                     _fmt(s["policy_tokens_per_step"], ".0f"), _fmt(s["response_tokens_per_step"], ".0f"),
                     _fmt(pt["turns"]), _fmt(pt["tool_calls"]), _fmt(pt["images"]),
                     _fmt(t["rollout"]), _fmt(t["reward"], ".3f"), _fmt(t["prepare"], ".3f"), _fmt(t["update"]),
                     _fmt(s["peak_rss_mb"], ".0f"), _fmt(s["peak_tree_rss_mb"], ".0f"),
                     _fmt(s["reward_mean_measured"], ".3f")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("turns / calls / images: per trajectory (medians over steps); policy tok: tokens the policy "
                 "generated per step (tool turns excluded); all tok: response tokens per step, tool turns included")
    ratio = res.get("mmrft_over_trl_step_s")
    if ratio:
        lines.append(f"{res['mmrft_over_trl_compares']} / TRL seconds per step (medians): {ratio:.2f}x  (target <= "
                     f"0.5x; TRL / mmrft {1 / ratio:.2f}x)")
    if res.get("mmrft_prefill_over_trl_step_s"):
        lines.append(f"mmrft-prefill / TRL seconds per step: {res['mmrft_prefill_over_trl_step_s']:.2f}x")
    if res.get("continuation_over_prefill_step_s"):
        lines.append(f"KV-cache continuation / re-prefill (mmrft): {res['continuation_over_prefill_step_s']:.2f}x "
                     f"per step, {_fmt(res.get('continuation_over_prefill_rollout_s'))}x rollout time")
    if res.get("loop_over_generate_step_s"):
        lines.append(f"mmrft's sampling loop / generate (rollout.decoder): {res['loop_over_generate_step_s']:.2f}x per "
                     f"step, {_fmt(res.get('loop_over_generate_rollout_s'))}x rollout time")
    if "same_prompt_ids" in res:
        lines.append(f"same prompt token ids on both sides: {res['same_prompt_ids']}; same tool-turn token ids: "
                     f"{res['same_tool_turn_ids']}")
    if res.get("warning"):
        lines.append(f"WARNING: {res['warning']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--steps", type=int, default=5, help="measured steps per run (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=1, help="steps per run left out of the figures")
    ap.add_argument("--rounds", type=int, default=2, help="runs per framework, alternating (order flips each round)")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step (P)")
    ap.add_argument("--group", type=int, default=8, help="trajectories per prompt (G)")
    ap.add_argument("--max-tokens", type=int, default=256,
                    help="response tokens per trajectory, tool turns included (T)")
    ap.add_argument("--tool-rounds", type=int, default=2, help="tool rounds per trajectory (K): K+1 assistant turns")
    ap.add_argument("--micro-batch", type=int, default=None,
                    help="trajectories per forward/backward on both sides (default P*G: the whole batch at once); "
                         "mmrft: algorithm.micro_batch_size=M (its micro-batches sorted by length, its default); TRL: "
                         "per_device_train_batch_size=M, gradient_accumulation_steps=steps_per_generation=P*G/M, "
                         "still one optimizer step per generation batch of P*G")
    ap.add_argument("--lr", type=float, default=1e-9,
                    help="learning rate on both sides; the default keeps the policy (and so each step's work) as "
                         "prepared: at 1e-4 TRL's policy stopped calling the tool within 4 steps while mmrft's did "
                         "not, and the two sides no longer did the same work")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads on both sides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    ap.add_argument("--out", help="result JSON (default benchmarks/results/multiturn_step/multiturn_step_<size>.json)")
    ap.add_argument("--mmrft-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra mmrft config override (repeatable; recorded in the JSON)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1 or args.group < 2 or args.prompts < 1 \
            or args.tool_rounds < 1 or args.max_tokens < 16:
        ap.error("need --steps >= 1, --warmup >= 0, --rounds >= 1, --group >= 2, --prompts >= 1, --tool-rounds >= 1, "
                 "--max-tokens >= 16")
    out = Path(args.out) if args.out else RESULTS / f"multiturn_step_{args.size}.json"
    workdir = RESULTS / args.size
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    micro = args.micro_batch or args.prompts * args.group
    if (args.prompts * args.group) % micro:
        ap.error(f"--micro-batch {micro} does not divide P*G = {args.prompts * args.group}")
    total_steps = args.warmup + args.steps
    n_rows = max(256, total_steps * args.prompts)
    model_dir, data_dir, model_info = prepare(args.size, n_rows, workdir, args.threads)
    with open(data_dir / "data.jsonl", encoding="utf-8") as fh:
        n_data = sum(1 for line in fh if line.strip())
    order = prompt_order(n_data, total_steps, args.prompts, args.seed)
    spec = {"model": str(model_dir.resolve()), "data": str(data_dir.resolve()), "prompts": args.prompts,
            "group": args.group, "max_tokens": args.max_tokens, "tool_rounds": args.tool_rounds,
            "temperature": 1.0, "lr": args.lr, "threads": args.threads, "seed": args.seed, "warmup": args.warmup,
            "steps": args.steps, "order": order, "mmrft_set": list(args.mmrft_set),
            "micro_batch": micro}

    runs: dict[str, list[dict]] = {fw: [] for fw in args.frameworks}
    for r in range(1, args.rounds + 1):
        seq = list(args.frameworks) if r % 2 else list(reversed(args.frameworks))
        for pos, fw in enumerate(seq):
            res = run_child(fw, spec, workdir, r, pos)
            runs[fw].append(res)
            s = [x for x in res["steps"] if not x["warmup"]]
            print(f"round {r}: {fw}: {statistics.median(x['step_s'] for x in s):.2f} s/step (median of {len(s)}), "
                  f"{statistics.fmean(x['turns'] for x in s):.2f} turns/trajectory, "
                  f"peak RSS {res['rusage_mb']['self']:.0f} MB", flush=True)

    import torch
    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__}
    for mod in ("trl", "mmrft", "accelerate", "datasets"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    trajectories = args.prompts * args.group
    frameworks = {}
    for fw, rounds in runs.items():
        frameworks[fw] = {"summary": summarise(rounds, trajectories),
                          "same_prompts_as_expected": all(x["prompt_rows"] == order for x in rounds),
                          "rounds": rounds}
    from mmrft.data.sources import load_samples

    samples = load_samples(str(data_dir), check_images=False)
    res = {
        "benchmark": "multiturn_step",
        "command": " ".join([sys.executable, *sys.argv]),
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in spec.items() if k != "order"} | {
            "size": args.size, "rounds": args.rounds, "trajectories_per_step": trajectories, "task": TASK,
            "tool": TOOL, "data_seed": DATA_SEED, "model_seed": MODEL_SEED,
            "max_assistant_turns": args.tool_rounds + 1,
            "algorithm": "Dr. GRPO (no KL, one on-policy step), multi-turn, tool tokens masked"},
        "prompts": {"order": order, "ids": [[samples[i].id for i in step] for step in order],
                    "texts": sorted({samples[i].prompt for step in order for i in step})},
        "mapping": MAPPING,
        "kv_cache": KV_CACHE,
        "model": model_info,
        "versions": versions,
        "machine": {"cpu_count": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "frameworks": frameworks,
    }
    res.update(compare(frameworks))
    write_json(out, res)
    print(table(res))
    print(f"wrote {out}")
    if not all(f["same_prompts_as_expected"] for f in frameworks.values()):
        print("warning: a framework did not draw the expected prompts (see same_prompts_as_expected)", file=sys.stderr)
        return 1
    return 0


def compare(frameworks: dict) -> dict:
    """The ratios between the runs present (mmrft/TRL, mmrft-prefill/TRL, continuation/re-prefill), the equality
    checks of prompt and tool-turn tokens, and a warning when the two sides did not do comparable work."""
    res: dict = {}
    med = {fw: f["summary"]["step_s"]["median"] for fw, f in frameworks.items()}
    # name -> (numerator run, denominator run, also the ratio of their rollout times)
    pairs = {"continuation_over_prefill": ("mmrft", "mmrft-prefill", True),
             "mmrft_prefill_over_trl": ("mmrft-prefill", "trl", False),
             "mmrft_generate_over_trl": ("mmrft-generate", "trl", False),
             "loop_over_generate": ("mmrft", "mmrft-generate", True)}
    for name, (a, b, rollout_too) in pairs.items():
        if not (med.get(a) and med.get(b)):
            continue
        res[f"{name}_step_s"] = med[a] / med[b]
        if rollout_too:
            ra, rb = (frameworks[fw]["summary"]["time_split_s"]["rollout"] for fw in (a, b))
            if ra and rb:
                res[f"{name}_rollout_s"] = ra / rb
    mm = "mmrft" if "mmrft" in frameworks else "mmrft-prefill" if "mmrft-prefill" in frameworks else None
    if mm and "trl" in frameworks:
        a, b = med[mm], med["trl"]
        res["mmrft_over_trl_step_s"] = a / b if a and b else None
        res["trl_over_mmrft_step_s"] = b / a if a and b else None
        res["mmrft_over_trl_compares"] = mm
        m, t = frameworks[mm]["rounds"][0], frameworks["trl"]["rounds"][0]
        res["same_prompt_ids"] = m.get("first_prompt_ids") == t.get("first_prompt_ids")
        res["same_tool_turn_ids"] = _same_tool_turns(m.get("tool_turns", []), t.get("tool_turns", []))
        pm = frameworks[mm]["summary"]["per_trajectory"]["turns"]
        pt = frameworks["trl"]["summary"]["per_trajectory"]["turns"]
        if pm and pt and abs(pm - pt) > 0.25 * max(pm, pt):
            res["warning"] = (f"the trajectories differ in turn count (mmrft {pm:.2f}, TRL {pt:.2f} per trajectory): "
                              "the two sides did not do the same amount of work")
        if pm is not None and pm < 1.5:
            res["warning"] = (res.get("warning", "") + " the policy rarely calls the tool (mmrft: "
                              f"{pm:.2f} turns per trajectory)").strip()
        dropped = [s["step"] for r in frameworks["trl"]["rounds"] for s in r["steps"]
                   if s.get("images_in_loss_forward") is False]
        if dropped:
            res["warning"] = (res.get("warning", "") + f" TRL dropped the images from its loss forward at steps "
                              f"{dropped} (image tokens and images did not match): its update did less work").strip()
    return res


def _same_tool_turns(a: list[dict], b: list[dict]) -> bool | None:
    """Whether a tool turn with the same text got the same token ids on both sides (None: no common text)."""
    by_text = {x["text"]: x["ids"] for x in a}
    common = [(by_text[x["text"]], x["ids"]) for x in b if x["text"] in by_text]
    return all(p == q for p, q in common) if common else None


if __name__ == "__main__":
    sys.exit(main())
