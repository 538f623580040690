"""Child process of `multiturn_step.py`: W + N multi-turn GRPO steps with Hugging Face TRL's `GRPOTrainer`, the
policy calling `zoom_in` through TRL 1.16's tool loop (`environment_factory`, `_tool_call_loop`).

    python benchmarks/multiturn_step_trl.py SPEC.json RESULT.json

The tool. TRL calls a tool as a Python method with the parsed arguments and renders its return value as a `tool`
message; a list of content blocks may hold images, which TRL appends to the conversation's images (grpo_trainer.py:
2014-2026) and gives the model in the next turn and in the loss forward. A standalone `tools=` function never sees
the sample, so the tool is a method of an environment (`environment_factory=ZoomEnv`): `reset(**row)` receives the
dataset row (its image) and builds the `ToolContext` mmrft's rollout builds; `zoom_in(**arguments)` runs the call
through mmrft's own `run_tool_call` (the same argument checks and crop), appends the crop as mmrft's
`ToolEnvironment` does, and returns `[crop, text]` in the order mmrft writes a tool turn; the Qwen3-VL template
wraps it in `<tool_response>` once, as it does mmrft's tool message (mmrft unwraps ToolEnvironment's own wrapper for
templates that wrap), so the template gives the same tokens (checked by the parent: `same_tool_turn_ids`).

The tool schema in the prompt. TRL derives a tool's schema from its signature and docstring
(`transformers.utils.get_json_schema`), which cannot say `minItems`/`minimum`; here it is given mmrft's registered
schema for `zoom_in` instead, so both prompts list the same tool in the same words (checked: `same_prompt_ids`).

Step time and the split as in rl_step_trl.py: rollout = `_generate` (prompt tokenisation, image processing and the
whole tool loop included), reward = `_calculate_rewards`, prepare = the rest of `_generate_and_score_completions`,
update = the rest of the step.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

T_START = time.perf_counter()

from rl_step import rusage_mb, write_json  # noqa: E402  (benchmarks/ is this script's directory)
from multiturn_step import TOOL, tool_context  # noqa: E402


def main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    import transformers.utils.chat_parsing.response_parser as response_parser
    import transformers.utils.chat_template_utils as chat_template_utils
    from datasets import Dataset
    from transformers import AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import mmrft  # noqa: F401  (registers the image-only processor class for AutoProcessor)
    from mmrft.data.media import load_image
    from mmrft.data.prompts import build_messages
    from mmrft.data.sources import load_samples
    from mmrft.models.grounding import model_image_size
    from mmrft.models.load import media_token_ids
    from mmrft.rewards import get_reward
    from mmrft.tools import ToolCall, run_tool_call, tool_schemas

    # the prompt lists mmrft's schema of the tool (see the module docstring)
    derive_schema = chat_template_utils.get_json_schema

    def schema_of(func):
        given = getattr(func, "mmrft_schema", None)
        return copy.deepcopy(given) if given is not None else derive_schema(func)

    chat_template_utils.get_json_schema = schema_of
    response_parser.get_json_schema = schema_of

    p, g = spec["prompts"], spec["group"]
    total = spec["warmup"] + spec["steps"]
    processor = AutoProcessor.from_pretrained(spec["model"])
    suppress = media_token_ids(processor)
    samples = load_samples(spec["data"])
    order = [i for step in spec["order"] for i in step]
    ds = Dataset.from_list([{
        "prompt": build_messages(samples[i].prompt, len(samples[i].images), fmt="r1"),
        "image": load_image(samples[i].images[0]),
        "row": i,
        "sample": json.dumps(samples[i].reward_view()),
    } for i in order])

    class ZoomEnv:
        """One trajectory's tool state, as mmrft's ToolEnvironment + MultiTurnEngine keep it."""

        def reset(self, image=None, **row):
            self.ctx = tool_context(processor, image)
            self.calls, self.failed = 0, 0

        def zoom_in(self, **arguments):
            out = run_tool_call(ToolCall(TOOL, dict(arguments), ""), self.ctx, timeout_s=5.0, allowed=[TOOL])
            self.calls += 1
            self.failed += out.error is not None
            self.ctx.returned.extend(out.images)
            self.ctx.model_sizes += [model_image_size(processor, *im.size) for im in out.images]
            return [{"type": "image", "image": im} for im in out.images] + [{"type": "text", "text": out.text}]

    ZoomEnv.zoom_in.mmrft_schema = tool_schemas([TOOL])[0]

    count = get_reward("count")
    drawn: list[list[int]] = []
    counts: list[dict] = []

    def count_reward(prompts, completions, sample, row, completion_ids, environments=None, **kwargs):
        """mmrft's `count` grader on the last assistant message (one float per trajectory); also counts the turns,
        calls and images of the step's trajectories."""
        drawn.append(list(dict.fromkeys(row)))
        out, turns, images = [], 0, 0
        for c, s in zip(completions, sample):
            assistant = [m for m in c if m.get("role") == "assistant"]
            turns += len(assistant)
            images += sum(1 for m in c if m.get("role") == "tool" and isinstance(m.get("content"), list)
                          for part in m["content"] if isinstance(part, dict) and part.get("type") == "image")
            last = assistant[-1] if assistant else {}
            text = last.get("content") or ""
            if isinstance(text, list):
                text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
            if last.get("reasoning_content"):
                text = f"<think>{last['reasoning_content']}</think>{text}"
            out.append(float(count(text, json.loads(s))))
        n = len(completions)
        envs = environments or []
        counts.append({"turns": turns / n, "images": images / n,
                       "tool_calls": sum(e.calls for e in envs) / n if envs else None,
                       "failed_calls": sum(e.failed for e in envs) / n if envs else None,
                       "response_tokens": sum(len(ids) for ids in completion_ids)})
        return out

    timers: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    extra: dict = {"tool_turns": []}
    images_in_loss: list[bool] = []

    class TimedGRPOTrainer(GRPOTrainer):
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
            out = self._timed("generate_and_score", super()._generate_and_score_completions, inputs)
            # TRL drops every image of the batch from the loss forward when a trajectory's image tokens do not match
            # its images (grpo_trainer.py:2623): recorded, as it would make TRL's update cheaper than mmrft's
            images_in_loss.append("pixel_values" in out)
            return out

        def _tokenize_prompts(self, prompts):
            out = super()._tokenize_prompts(prompts)
            extra.setdefault("first_prompt_ids", list(out[0][0]))
            return out

        def _get_tool_suffix_ids(self, tool_messages):
            ids = super()._get_tool_suffix_ids(tool_messages)
            if len(extra["tool_turns"]) < 8 and len(tool_messages) == 1:
                text = "".join(part.get("text", "") for part in tool_messages[0]["content"]
                               if isinstance(part, dict) and part.get("type") == "text")
                extra["tool_turns"].append({"text": text, "ids": list(ids)})
            return ids

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin, self.end = {}, {}

        def on_step_begin(self, args, state, control, **kw):
            self.begin[state.global_step + 1] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.end[state.global_step] = time.perf_counter()

    micro = spec.get("micro_batch", p * g)  # trajectories per forward/backward; one optimizer step per P*G
    cfg = GRPOConfig(
        output_dir=spec["run_dir"],
        per_device_train_batch_size=micro, num_generations=g, steps_per_generation=p * g // micro,
        gradient_accumulation_steps=p * g // micro,
        num_iterations=1, max_completion_length=spec["max_tokens"],
        max_tool_calling_iterations=spec["tool_rounds"],
        temperature=spec["temperature"], top_p=1.0, top_k=0,
        generation_kwargs={"suppress_tokens": suppress},
        learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", max_grad_norm=1.0,
        beta=0.0, loss_type="dr_grpo", scale_rewards="none", epsilon=0.2, mask_truncated_completions=False,
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
        model_init_kwargs={"dtype": "float32"},
        max_steps=total, logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True,
        shuffle_dataset=False, seed=spec["seed"], dataloader_num_workers=0,
    )
    timer = StepTimer()
    trainer = TimedGRPOTrainer(model=spec["model"], reward_funcs=[count_reward], args=cfg, train_dataset=ds,
                               environment_factory=ZoomEnv, callbacks=[timer])
    extra["trl_chat_template_replaced"] = trainer.chat_template is not None
    trainer.train()

    logs = {h["step"]: h for h in trainer.state.log_history if "reward" in h}
    steps = []
    for k in range(1, total + 1):
        h, t, c = logs[k], timers[k], counts[k - 1]
        step_s = timer.end[k] - timer.begin[k]
        gs = t.get("generate_and_score", 0.0)
        mean_len = h["completions/mean_length"]  # tokens with tool_mask 1: what the policy generated
        steps.append({
            "step": k, "warmup": k <= spec["warmup"], "step_s": step_s,
            "interval_s": timer.end[k] - timer.end[k - 1] if k - 1 in timer.end else None,
            "rollout_s": t.get("rollout", 0.0), "reward_s": t.get("reward", 0.0),
            "prepare_s": gs - t.get("rollout", 0.0) - t.get("reward", 0.0), "update_s": step_s - gs,
            "reward_mean": h["reward"], "policy_tokens": int(round(mean_len * p * g)),
            "trl_tool_call_frequency": h.get("tools/call_frequency"),
            "trl_tool_failure_frequency": h.get("tools/failure_frequency"),
            "images_in_loss_forward": images_in_loss[k - 1] if k - 1 < len(images_in_loss) else None, **c,
        })
    write_json(result_path, {
        "framework": "trl", "steps": steps, "prompt_rows": drawn, "rusage_mb": rusage_mb(),
        "torch_threads": torch.get_num_threads(), "startup_s": timer.begin[1] - T_START, **extra,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
