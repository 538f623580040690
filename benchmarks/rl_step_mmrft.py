"""Child process of `rl_step.py`: W + N GRPO steps with mmrft's own trainer (`mmrft.train.rl.train_rl`).

    python benchmarks/rl_step_mmrft.py SPEC.json RESULT.json

Writes per step: mmrft's `time/step` and its split (rollout, reward, prepare, update) from metrics.jsonl, the wall
interval between consecutive step ends, tokens generated, mean reward, and the dataset rows drawn.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

from rl_step import rusage_mb, write_json  # noqa: E402  (benchmarks/ is this script's directory)


def main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    import mmrft.train.rl as rl
    import mmrft.train.run as run  # the run's set-up and sampling (RLRun) live here
    from mmrft.config import load_config
    from mmrft.data.sources import load_samples
    from mmrft.track.metrics import read_metrics

    rows = {s.id: i for i, s in enumerate(load_samples(spec["data"], check_images=False))}
    stamps: dict[int, float] = {}
    cpu: dict[int, float] = {}
    drawn: list[list[int]] = []
    first_ids: list[int] = []

    class StampedTracker(run.Tracker):
        """Records when each training step is logged (its end), for the step-to-step wall interval."""

        def log(self, step, metrics, phase="train"):
            if phase == "train":
                stamps[step] = time.perf_counter()
                cpu[step] = time.process_time()  # this process's CPU seconds, all its threads
            super().log(step, metrics, phase)

    real_sample_step = run.sample_step

    def recording_sample_step(*args, **kwargs):
        out = real_sample_step(*args, **kwargs)
        drawn.append([rows[s.id] for s in out.drawn.prompts.samples])
        if not first_ids:  # the first prompt's token ids, for rl_step.py's same-input check against the floor
            inputs = out.drawn.prompts.inputs
            first_ids.extend(inputs["input_ids"][0][inputs["attention_mask"][0].bool()].tolist())
        return out

    run.Tracker = StampedTracker
    run.sample_step = recording_sample_step

    p, g = spec["prompts"], spec["group"]
    total = spec["warmup"] + spec["steps"]
    cfg = load_config(None, [
        "algorithm.name=dr_grpo",
        # the dr_grpo preset's knobs, spelled out so a preset change cannot silently change the benchmark
        "algorithm.advantage=dr_grpo", "algorithm.loss_agg_mode=seq-mean-token-sum-norm", "algorithm.kl_coef=0.0",
        "algorithm.policy_loss=ppo_clip", "algorithm.clip_low=0.2", "algorithm.clip_high=0.2",
        "algorithm.ppo_epochs=1", "algorithm.minibatches=1", "algorithm.entropy_coef=0.0",
        "algorithm.filter_zero_variance=false", "algorithm.overlong_buffer=0", "algorithm.mask_truncated=false",
        f"algorithm.micro_batch_size={p * g}",
        f"model.path={spec['model']}", "model.dtype=float32", "model.gradient_checkpointing=false",
        f"data.train={spec['data']}", "data.prompt_format=r1",
        f"rollout.group_size={g}", f"rollout.prompts_per_step={p}", f"rollout.max_new_tokens={spec['max_new_tokens']}",
        f"rollout.temperature={spec['temperature']}", "rollout.top_p=1.0", "rollout.top_k=0",
        f"trainer.output_dir={spec['run_dir']}", "trainer.overwrite=true", f"trainer.steps={total}",
        f"trainer.lr={spec['lr']}", "trainer.weight_decay=0.0", "trainer.warmup_steps=0",
        "trainer.lr_schedule=constant",
        "trainer.max_grad_norm=1.0", f"trainer.seed={spec['seed']}", f"trainer.threads={spec['threads']}",
        "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false",
        "tracking.tensorboard=false", "tracking.rollouts_every=0",
        *spec.get("mmrft_set", []),  # --mmrft-set: e.g. switch an optimisation off to measure it
    ])
    rl.train_rl(cfg)

    metrics = [r for r in read_metrics(spec["run_dir"]) if r.get("phase") == "train"]
    steps = []
    for r in metrics:
        k = r["step"]
        mean_len = r["response_length/mean"]
        steps.append({
            "step": k, "warmup": k <= spec["warmup"], "step_s": r["time/step"],
            "interval_s": stamps[k] - stamps[k - 1] if k - 1 in stamps else None,
            "cpu_interval_s": cpu[k] - cpu[k - 1] if k - 1 in cpu else None,
            "rollout_s": r.get("time/rollout"), "reward_s": r.get("time/reward"),
            "prepare_s": r.get("time/prepare"), "update_s": r.get("time/update"),
            "reward_mean": r["reward/mean"], "completion_length_mean": mean_len,
            "completion_length_max": r.get("response_length/max"),
            "tokens": int(round(mean_len * p * g)),
        })
    # the run's final checkpoint (train_rl always writes one) is not part of the benchmark: free the disk
    shutil.rmtree(Path(spec["run_dir"]) / "final", ignore_errors=True)
    first_start = stamps[1] - steps[0]["step_s"] if steps and 1 in stamps else None
    write_json(result_path, {
        "framework": "mmrft", "steps": steps, "prompt_rows": drawn, "rusage_mb": rusage_mb(),
        "torch_threads": torch.get_num_threads(), "first_prompt_ids": first_ids,
        "startup_s": first_start - T_START if first_start is not None else None,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
