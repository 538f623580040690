"""Child process of `multiturn_step.py`: W + N multi-turn GRPO steps with mmrft's own trainer
(`mmrft.train.rl.train_rl`, `rollout.tools=[zoom_in]`).

    python benchmarks/multiturn_step_mmrft.py SPEC.json RESULT.json

Writes per step: mmrft's `time/step` and its split (rollout, reward, prepare, update) from metrics.jsonl, the wall
interval between consecutive step ends, the tokens the policy generated (loss mask) and all response tokens (tool
turns included), assistant turns / tool calls / returned images / failed calls per trajectory, mean reward, and the
dataset rows drawn; plus the first prompt's token ids and the tool turns of step 1 (for the parent's equality
checks against TRL).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

from rl_step import rusage_mb, write_json  # noqa: E402  (benchmarks/ is this script's directory)


def tool_segments(ids: list[int], loss: list[float]) -> list[list[int]]:
    """The runs of tokens with loss 0 (the tool turns) of one trajectory, in order."""
    out, cur = [], []
    for t, w in zip(ids, loss):
        if w == 0.0:
            cur.append(t)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    import mmrft.train.rl as rl
    import mmrft.train.run as run  # where the RL loop's tracker and sampler live (since the RL-core refactor)
    from mmrft.config import load_config
    from mmrft.data.sources import load_samples
    from mmrft.track.metrics import read_metrics

    rows = {s.id: i for i, s in enumerate(load_samples(spec["data"], check_images=False))}
    stamps: dict[int, float] = {}
    drawn: list[list[int]] = []
    counts: list[dict] = []
    extra: dict = {}

    class StampedTracker(run.Tracker):
        """Records when each training step is logged (its end), for the step-to-step wall interval."""

        def log(self, step, metrics, phase="train"):
            if phase == "train":
                stamps[step] = time.perf_counter()
            super().log(step, metrics, phase)

    real_sample_step = run.sample_step

    def recording_sample_step(*args, **kwargs):
        out = real_sample_step(*args, **kwargs)
        ro = out.drawn
        drawn.append([rows[s.id] for s in ro.prompts.samples])
        loss = ro.loss_mask if ro.loss_mask is not None else ro.completion_mask
        trajs = [t for t in (ro.trajectories or []) if t is not None]
        n = max(len(trajs), 1)
        counts.append({
            "policy_tokens": int(loss.sum()), "response_tokens": int(ro.completion_mask.sum()),
            "turns": sum(sum(x["role"] == "assistant" for x in t.turns) for t in trajs) / n,
            "tool_calls": sum(len(t.calls) for t in trajs) / n,
            "images": sum(len(t.images) for t in trajs) / n,
            "failed_calls": sum(bool(c.get("error")) for t in trajs for c in t.calls) / n,
            "ends": {e: sum(t.end == e for t in trajs) for e in sorted({t.end for t in trajs})},
        })
        if "first_prompt_ids" not in extra:
            inputs = ro.prompts.inputs
            keep = inputs["attention_mask"][0].bool()
            extra["first_prompt_ids"] = inputs["input_ids"][0][keep].tolist()
            turns = []
            for r in range(len(trajs)):
                n_tok = int(ro.completion_mask[r].sum())
                segs = tool_segments(ro.completion_ids[r, :n_tok].tolist(), loss[r, :n_tok].tolist())
                texts = [t["text"] for t in trajs[r].turns if t["role"] == "tool"]
                turns += [{"text": x, "ids": s} for x, s in zip(texts, segs)]
            extra["tool_turns"] = turns[:8]
            extra["example_trajectory"] = [{"role": t["role"], "text": t["text"], "images": len(t.get("images", []))}
                                           for t in trajs[0].turns] if trajs else []
        return out

    run.Tracker = StampedTracker
    run.sample_step = recording_sample_step

    p, g, k, t = spec["prompts"], spec["group"], spec["tool_rounds"], spec["max_tokens"]
    total = spec["warmup"] + spec["steps"]
    cfg = load_config(None, [
        "algorithm.name=dr_grpo",
        "algorithm.advantage=dr_grpo", "algorithm.loss_agg_mode=seq-mean-token-sum-norm", "algorithm.kl_coef=0.0",
        "algorithm.policy_loss=ppo_clip", "algorithm.clip_low=0.2", "algorithm.clip_high=0.2",
        "algorithm.ppo_epochs=1", "algorithm.minibatches=1", "algorithm.entropy_coef=0.0",
        "algorithm.filter_zero_variance=false", "algorithm.overlong_buffer=0", "algorithm.mask_truncated=false",
        f"algorithm.micro_batch_size={spec.get('micro_batch', p * g)}",
        f"model.path={spec['model']}", "model.dtype=float32", "model.gradient_checkpointing=false",
        f"data.train={spec['data']}", "data.prompt_format=r1",
        f"rollout.group_size={g}", f"rollout.prompts_per_step={p}",
        f"rollout.temperature={spec['temperature']}", "rollout.top_p=1.0", "rollout.top_k=0",
        # multi-turn: the tool, K tool rounds (K+1 assistant turns), T response tokens per trajectory
        "rollout.tools=[zoom_in]", f"rollout.max_turns={k + 1}", f"rollout.max_tool_calls={4 * k}",
        f"rollout.max_images={4 * k}", f"rollout.max_total_tokens={t}", f"rollout.max_new_tokens={t}",
        f"trainer.output_dir={spec['run_dir']}", "trainer.overwrite=true", f"trainer.steps={total}",
        f"trainer.lr={spec['lr']}", "trainer.weight_decay=0.0", "trainer.warmup_steps=0",
        "trainer.lr_schedule=constant",
        "trainer.max_grad_norm=1.0", f"trainer.seed={spec['seed']}", f"trainer.threads={spec['threads']}",
        "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false",
        "tracking.tensorboard=false", "tracking.rollouts_every=0",
        *spec.get("mmrft_set", []),
    ])
    rl.train_rl(cfg)

    metrics = [r for r in read_metrics(spec["run_dir"]) if r.get("phase") == "train"]
    steps = []
    for r, c in zip(metrics, counts):
        s = r["step"]
        steps.append({
            "step": s, "warmup": s <= spec["warmup"], "step_s": r["time/step"],
            "interval_s": stamps[s] - stamps[s - 1] if s - 1 in stamps else None,
            "rollout_s": r.get("time/rollout"), "reward_s": r.get("time/reward"),
            "prepare_s": r.get("time/prepare"), "update_s": r.get("time/update"),
            "reward_mean": r["reward/mean"], "response_length_mean": r["response_length/mean"],
            **c,
        })
    shutil.rmtree(Path(spec["run_dir"]) / "final", ignore_errors=True)
    first_start = stamps[1] - steps[0]["step_s"] if steps and 1 in stamps else None
    write_json(result_path, {
        "framework": "mmrft", "steps": steps, "prompt_rows": drawn, "rusage_mb": rusage_mb(),
        "torch_threads": torch.get_num_threads(),
        "startup_s": first_start - T_START if first_start is not None else None, **extra,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
