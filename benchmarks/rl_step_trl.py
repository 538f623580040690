"""Child process of `rl_step.py`: W + N GRPO steps with Hugging Face TRL's `GRPOTrainer`.

    python benchmarks/rl_step_trl.py SPEC.json RESULT.json

`import mmrft` only registers the image-only processor class the tiny model's files name (the stock Qwen2-VL
processor builds a video processor, which needs torchvision); TRL then loads the model and that processor from the
path itself. The reward is mmrft's `count` grader behind TRL's reward-function signature. Step time comes from a
`TrainerCallback` (on_step_begin -> on_step_end); the split from timers around GRPOTrainer's own methods:
rollout = `_generate` (prompt tokenisation and image processing included, as in mmrft's rollout), reward =
`_calculate_rewards`, prepare = the rest of `_generate_and_score_completions` (second processor pass, padding,
advantages), update = the rest of the step (loss forward/backward, clipping, optimizer step).
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

T_START = time.perf_counter()

from rl_step import rusage_mb, write_json  # noqa: E402  (benchmarks/ is this script's directory)


def main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    import mmrft  # noqa: F401  (registers the image-only processor class for AutoProcessor)
    from datasets import Dataset
    from transformers import AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mmrft.data.media import load_image
    from mmrft.data.prompts import build_messages
    from mmrft.data.sources import load_samples
    from mmrft.models.load import media_token_ids
    from mmrft.rewards import get_reward

    p, g = spec["prompts"], spec["group"]
    total = spec["warmup"] + spec["steps"]
    samples = load_samples(spec["data"])
    # one row per prompt in the order mmrft draws them; shuffle_dataset=False keeps it, P rows per step
    order = [i for step in spec["order"] for i in step]
    ds = Dataset.from_list([{
        "prompt": build_messages(samples[i].prompt, len(samples[i].images), fmt="r1"),
        "image": load_image(samples[i].images[0]),
        "row": i,
        "sample": json.dumps(samples[i].reward_view()),
    } for i in order])

    count = get_reward("count")
    drawn: list[list[int]] = []

    def count_reward(prompts, completions, sample, row, **kwargs):
        """mmrft's `count` grader with TRL's reward signature (one float per completion)."""
        rows = list(dict.fromkeys(row))  # the P prompts of this generation batch, in order
        drawn.append(rows)
        out = []
        for c, s in zip(completions, sample):
            text = c[0]["content"] if isinstance(c, list) else c
            out.append(float(count(text, json.loads(s))))
        return out

    timers: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    class TimedGRPOTrainer(GRPOTrainer):
        """Times the phases of a step with TRL's own method boundaries (see the module docstring)."""

        def _timed(self, key, fn, *a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers[self.state.global_step + 1][key] += time.perf_counter() - t0

        def _generate(self, prompts):
            return self._timed("rollout", super()._generate, prompts)

        def _calculate_rewards(self, *a, **kw):
            return self._timed("reward", super()._calculate_rewards, *a, **kw)

        def _generate_and_score_completions(self, inputs):
            return self._timed("generate_and_score", super()._generate_and_score_completions, inputs)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin, self.end, self.cpu = {}, {}, {}

        def on_step_begin(self, args, state, control, **kw):
            self.begin[state.global_step + 1] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.end[state.global_step] = time.perf_counter()
            self.cpu[state.global_step] = time.process_time()

    processor_for_ids = AutoProcessor.from_pretrained(spec["model"])
    suppress = media_token_ids(processor_for_ids)
    del processor_for_ids
    cfg = GRPOConfig(
        output_dir=spec["run_dir"],
        per_device_train_batch_size=p * g, num_generations=g, steps_per_generation=1, gradient_accumulation_steps=1,
        num_iterations=1, max_completion_length=spec["max_new_tokens"],
        temperature=spec["temperature"], top_p=1.0, top_k=0,
        generation_kwargs={"suppress_tokens": suppress},
        learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", max_grad_norm=1.0,
        beta=0.0, loss_type="dr_grpo", scale_rewards="none", epsilon=0.2,
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
        model_init_kwargs={"dtype": "float32"},
        max_steps=total, logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True,
        shuffle_dataset=False, seed=spec["seed"], dataloader_num_workers=0,
    )
    timer = StepTimer()
    trainer = TimedGRPOTrainer(model=spec["model"], reward_funcs=[count_reward], args=cfg, train_dataset=ds,
                               callbacks=[timer])
    trainer.train()

    logs = {h["step"]: h for h in trainer.state.log_history if "reward" in h}
    steps = []
    for k in range(1, total + 1):
        h, t = logs[k], timers[k]
        step_s = timer.end[k] - timer.begin[k]
        gs = t.get("generate_and_score", 0.0)
        mean_len = h["completions/mean_length"]
        steps.append({
            "step": k, "warmup": k <= spec["warmup"], "step_s": step_s,
            "interval_s": timer.end[k] - timer.end[k - 1] if k - 1 in timer.end else None,
            "cpu_interval_s": timer.cpu[k] - timer.cpu[k - 1] if k - 1 in timer.cpu else None,
            "rollout_s": t.get("rollout", 0.0), "reward_s": t.get("reward", 0.0),
            "prepare_s": gs - t.get("rollout", 0.0) - t.get("reward", 0.0), "update_s": step_s - gs,
            "reward_mean": h["reward"], "completion_length_mean": mean_len,
            "tokens": int(round(mean_len * p * g)),
        })
    write_json(result_path, {
        "framework": "trl", "steps": steps, "prompt_rows": drawn, "rusage_mb": rusage_mb(),
        "torch_threads": torch.get_num_threads(),
        "startup_s": timer.begin[1] - T_START,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
