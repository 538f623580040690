"""Multi-turn rollouts: trajectories in which the policy calls tools (or acts in an environment), reads their answers
(text and images) and continues, until it answers or a limit ends the trajectory.

A trajectory is one token sequence after the prompt: the policy's turns (loss mask 1) and the tool turns between them
(loss mask 0), each tool turn written in the model's own chat template (`role: tool`, the template's image
placeholders) and encoded by the processor, so the placeholders expand to exactly the features the model gets for
the returned images. `MultiTurnEngine.generate` returns a `mmrft.rollout.engine.Rollout` whose rows are whole
trajectories: the training forward scores them like single completions (`mmrft.train.forward`, expanded sequences
with every image), the rewards grade each row's final answer and may read its record (`Trajectory`).

The loop, for the B prompts × n samples of a step:

1. the first assistant turn of every row, from the inner engine (prompts prefilled once per group);
2. each row's environment answers its turn (`Environment.step`): no tool call ends the trajectory (the model
   answered); otherwise the calls run and their answer becomes a tool turn;
3. the rows still running continue from their KV cache with their tool turn appended (`mmrft.rollout.continuation`,
   where the family allows it: Qwen-VL, on the transformers engine), or with their whole sequence (prompt, turns so
   far, every image) prefilled again (a `PromptBatch` whose `returned_images` the vLLM engine reads: it takes the
   tokens as given and the images as PIL); the next assistant turn is generated, until each row is done or a limit
   ends it (`TurnLimits`).

Each trajectory ends for one reason (`Trajectory.end`): answer, truncated (a turn hit `rollout.max_new_tokens`),
max_turns, max_tool_calls, max_tokens (`rollout.max_total_tokens`), max_images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from mmrft.data.collate import PromptBatch, media_with_responses
from mmrft.data.media import load_image
from mmrft.data.schema import Sample
from mmrft.data.turns import encode_tool_turn
from mmrft.models.families import family_of
from mmrft.models.grounding import model_image_size
from mmrft.rollout.continuation import Segment, first_turn, next_turn, supports_turn_cache
from mmrft.rollout.engine import Rollout, SamplingParams
from mmrft.rollout.tool_trajectories import tool_context

log = logging.getLogger("mmrft")

END_REASONS = ("answer", "truncated", "max_turns", "max_tool_calls", "max_tokens", "max_images")


@dataclass
class TurnLimits:
    """What ends a trajectory besides an answer (each end is counted in the metrics)."""

    max_turns: int = 4  # assistant turns
    max_tool_calls: int = 8  # tool calls over the trajectory
    max_total_tokens: int = 1024  # response tokens, tool turns included
    max_images: int = 4  # images the tools return over the trajectory


@dataclass
class Trajectory:
    """One row's record: its turns, its tool calls and how it ended. `summary()` is what rewards and dumps see."""

    turns: list[dict] = field(default_factory=list)  # {"role": "assistant"|"tool", "text", "images": [PIL images]}
    calls: list[dict] = field(default_factory=list)  # {"name", "arguments", "error", "info"} in call order
    end: str = ""
    env_reward: Optional[float] = None  # the environment's own reward, when it gives one

    @property
    def images(self) -> list:
        return [im for t in self.turns for im in t.get("images", ())]

    def summary(self) -> dict[str, Any]:
        return {"turns": sum(t["role"] == "assistant" for t in self.turns), "end": self.end,
                "calls": [dict(c) for c in self.calls], "failed_calls": sum(bool(c.get("error")) for c in self.calls),
                "images": len(self.images), "env_reward": self.env_reward}


@dataclass
class _Row:
    """A trajectory being built."""

    prompt: int  # its prompt's index in the batch
    env: Any
    ctx: Any  # the environment's `mmrft.tools.ToolContext`
    ids: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    keys: dict[str, list[int]] = field(default_factory=dict)
    logprobs: list[float] = field(default_factory=list)
    media: dict[str, torch.Tensor] = field(default_factory=dict)
    trajectory: Trajectory = field(default_factory=Trajectory)
    truncated: bool = False
    done: bool = False
    segment: Optional[Segment] = None  # the latest tool turn, for continuing from the cache

    def add(self, ids: list[int], loss: float, keys: dict[str, list[int]] | None = None,
            logprobs: list[float] | None = None) -> None:
        self.ids += ids
        self.loss += [loss] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(ids)
        for k in set(self.keys) | set(keys or {}):
            self.keys.setdefault(k, [0] * (len(self.ids) - len(ids)))
            self.keys[k] += (keys or {}).get(k, [0] * len(ids))

    def add_media(self, media: dict[str, torch.Tensor]) -> None:
        for k, v in media.items():
            self.media[k] = torch.cat([self.media[k], v]) if k in self.media else v

    def finish(self, reason: str) -> None:
        self.done, self.trajectory.end = True, reason


class MultiTurnEngine:
    """A rollout engine whose rows are multi-turn trajectories, around a single-turn `engine` (its `generate`
    makes every assistant turn; `suppress` and `pad_id` are read from it).

    `make_environment(sample, context)` gives each trajectory its environment (`mmrft.tools.Environment`; a
    `ToolEnvironment` for `rollout.tools`); `context` is the `mmrft.tools.ToolContext` of the sample (its original
    images, the family's box convention, the processor's image limits)."""

    def __init__(self, engine, model, processor, make_environment: Callable, limits: TurnLimits | None = None,
                 reuse_cache: bool = False, first_view_max_pixels: Optional[int] = None):
        self.engine, self.model, self.processor = engine, model, processor
        self.make_environment = make_environment
        self.limits = limits or TurnLimits()
        self.suppress, self.pad_id = engine.suppress, engine.pad_id
        self.reuse_cache = reuse_cache  # continue rows from their KV cache (`mmrft.rollout.continuation`)
        self.first_view_max_pixels = first_view_max_pixels  # `data.max_pixels`: the size the prompt images were shown

    # the engine interface (`RolloutEngine`), plus what the trainer reads from an engine
    def sync_weights(self, model=None) -> None:
        if hasattr(self.engine, "sync_weights"):
            self.engine.sync_weights(model)

    def generate(self, prompts: PromptBatch, params: SamplingParams) -> Rollout:
        lim = self.limits
        self.device = prompts.inputs["input_ids"].device  # where tool turns' media and the rollout's tensors go
        cached = self.reuse_cache and supports_turn_cache(self.engine, self.model)
        if cached:
            turn, state = first_turn(self.engine, prompts, params)
        else:
            turn, state = self.engine.generate(prompts, params), None
        rows = [_Row(r // params.n, *self._environment(prompts.samples[r // params.n]))
                for r in range(len(turn.texts))]
        active = list(range(len(rows)))
        for k in range(lim.max_turns):
            for j, r in enumerate(active):
                self._take_turn(rows[r], turn, j, params, last=k == lim.max_turns - 1)
            still = [r for r in active if not rows[r].done]
            if not still:
                break
            budget = min(params.max_new_tokens, max(lim.max_total_tokens - len(rows[r].ids) for r in still))
            step = SamplingParams(1, budget, params.temperature, params.top_p, params.top_k)
            if cached:  # each row continues from its cache, its tool turn appended
                turn, state = next_turn(self.engine, self.model, state, [active.index(r) for r in still],
                                        [rows[r].segment for r in still], step)
            else:  # each row's whole sequence prefilled again
                turn = self.engine.generate(self._continuation(prompts, [rows[r] for r in still]), step)
            active = still
        return self._rollout(prompts, params.n, rows)

    # -- one turn of one row -----------------------------------------------------------------------------------

    def _take_turn(self, row: _Row, turn: Rollout, j: int, params: SamplingParams, last: bool) -> None:
        """Append row `j` of `turn` (an assistant turn) to `row`; let its environment answer; end it or append the
        tool turn."""
        lim = self.limits
        n_tok = int(turn.completion_mask[j].sum())
        allowed = min(params.max_new_tokens, lim.max_total_tokens - len(row.ids))  # this row's own budget
        cut = n_tok > allowed
        n_tok = min(n_tok, allowed)
        ids = turn.completion_ids[j, :n_tok].tolist()
        logprobs = turn.logprobs[j, :n_tok].tolist() if turn.logprobs is not None else None
        row.add(ids, 1.0, logprobs=logprobs)
        text = self.processor.tokenizer.decode(ids, skip_special_tokens=True) if cut else turn.texts[j]
        row.trajectory.turns.append({"role": "assistant", "text": text})
        if cut or bool(turn.truncated[j]):  # the turn hit its token budget without ending
            row.truncated = True
            row.finish("max_tokens" if len(row.ids) >= lim.max_total_tokens else "truncated")
            return
        obs = row.env.step(text)
        calls = list(obs.info.get("calls", [])) if getattr(obs, "info", None) else []
        row.trajectory.calls += [{"name": c.get("name"), "arguments": c.get("arguments"), "error": c.get("error"),
                                  "info": c.get("info") or {}} for c in calls]
        if obs.reward is not None:
            row.trajectory.env_reward = obs.reward
        if obs.done:
            row.finish("answer")
            return
        if len(row.trajectory.calls) > lim.max_tool_calls:
            row.finish("max_tool_calls")
            return
        if last:
            row.finish("max_turns")
            return
        images = list(obs.images)
        if isinstance(row.ctx.model_sizes, list):  # returned images are numbered after the originals (model_pixel boxes)
            row.ctx.model_sizes += [model_image_size(self.processor, *im.size) for im in images]
        if len(row.trajectory.images) + len(images) > lim.max_images:
            row.finish("max_images")
            return
        ids, keys, media = encode_tool_turn(self.processor, obs.text, images)
        media = {k: v.to(self.device) for k, v in media.items()}
        if len(row.ids) + len(ids) >= lim.max_total_tokens:
            row.truncated = True
            row.finish("max_tokens")
            return
        row.add(ids, 0.0, keys)
        row.add_media(media)
        row.segment = Segment(ids, keys, media)
        row.trajectory.turns.append({"role": "tool", "text": obs.text, "images": images})

    def _environment(self, sample: Sample):
        images = [load_image(ref) for ref in sample.images]
        ctx = tool_context(self.processor, family_of(self.model).box_format, images, sample.reward_view(),
                           self.first_view_max_pixels)
        env = self.make_environment(sample, ctx)
        env.reset(sample.reward_view(), ctx)  # the prompt (and its images) is the first observation
        return env, ctx

    # -- batches -----------------------------------------------------------------------------------------------

    def _continuation(self, prompts: PromptBatch, rows: list[_Row]) -> PromptBatch:
        """The full sequences of `rows` so far (prompt, turns, every image), left padded: the next turn's prompt."""
        mask = prompts.inputs["attention_mask"].bool()
        seqs: dict[str, list[torch.Tensor]] = {k: [] for k in prompts.token_keys()}
        for row in rows:
            keep = mask[row.prompt]
            for k in seqs:
                prompt_part = prompts.inputs[k][row.prompt][keep]
                if k == "input_ids":
                    tail = torch.tensor(row.ids, dtype=prompt_part.dtype)
                elif k == "attention_mask":
                    tail = torch.ones(len(row.ids), dtype=prompt_part.dtype)
                else:
                    tail = torch.tensor(row.keys.get(k, [0] * len(row.ids)), dtype=prompt_part.dtype)
                seqs[k].append(torch.cat([prompt_part, tail.to(prompt_part.device)]))
        length = max(len(s) for s in seqs["input_ids"])
        inputs = {}
        for k, parts in seqs.items():
            fill = self.pad_id if k == "input_ids" else 0
            inputs[k] = torch.stack([torch.cat([p.new_full((length - len(p),), fill), p]) for p in parts])
        inputs.update(media_with_responses(prompts, [row.prompt for row in rows], [row.media for row in rows]))
        returned = [len(row.trajectory.images) for row in rows]
        return PromptBatch([prompts.samples[row.prompt] for row in rows], inputs,
                           [prompts.images_per_prompt[row.prompt] + extra for row, extra in zip(rows, returned)],
                           [prompts.videos_per_prompt[row.prompt] for row in rows],
                           [prompts.audios_per_prompt[row.prompt] for row in rows], None,
                           returned_images=[row.trajectory.images for row in rows])

    def _rollout(self, prompts: PromptBatch, n: int, rows: list[_Row]) -> Rollout:
        t = max(len(row.ids) for row in rows)

        def padded(values: list[list], fill, dtype) -> torch.Tensor:
            return torch.tensor([v + [fill] * (t - len(v)) for v in values], dtype=dtype)

        ids = padded([row.ids for row in rows], self.pad_id, torch.long)
        mask = padded([[1.0] * len(row.ids) for row in rows], 0.0, torch.float32)
        loss = padded([row.loss for row in rows], 0.0, torch.float32)
        keys = sorted({k for row in rows for k in row.keys})
        token_keys = {k: padded([row.keys.get(k, [0] * len(row.ids)) for row in rows], 0, torch.long) for k in keys}
        logprobs = padded([row.logprobs for row in rows], 0.0, torch.float32)
        texts = [next((t["text"] for t in reversed(row.trajectory.turns) if t["role"] == "assistant"), "")
                 for row in rows]
        d = self.device
        return Rollout(prompts, n, ids.to(d), mask.to(d), torch.tensor([row.truncated for row in rows]).to(d), texts,
                       loss_mask=loss.to(d), media=[row.media for row in rows],
                       token_keys={k: v.to(d) for k, v in token_keys.items()} or None,
                       trajectories=[row.trajectory for row in rows],
                       logprobs=logprobs.to(d) if getattr(self.engine, "keep_logprobs", False) else None)


# -- from a config ---------------------------------------------------------------------------------------------


def environment_factory(cfg) -> Optional[Callable]:
    """`fn(sample, context) -> Environment` for `cfg.rollout` (`mmrft.config.RolloutConfig`): the registered
    environment `rollout.environment` built with `rollout.environment_options`, else a `ToolEnvironment` over
    `rollout.tools`; None for single-turn runs."""
    from mmrft.tools import ENVIRONMENTS, ToolEnvironment

    ro = cfg.rollout
    if ro.environment:
        make = ENVIRONMENTS[ro.environment]
        options = dict(ro.environment_options)
        return lambda sample, ctx: make(**options)
    if ro.tools:
        tools, timeout = list(ro.tools), ro.tool_timeout_s
        return lambda sample, ctx: ToolEnvironment(tools, timeout_s=timeout)
    return None


def prompt_tools(cfg) -> Optional[list[dict]]:
    """The function-calling schemas a multi-turn run's prompts offer: those of `rollout.tools`, or those an
    environment class declares (`tool_schemas()`); None for single-turn runs and with `rollout.tool_list=false`."""
    from mmrft.tools import ENVIRONMENTS, tool_schemas

    ro = cfg.rollout
    if not ro.tool_list:
        return None
    if ro.environment:
        declared = getattr(ENVIRONMENTS[ro.environment], "tool_schemas", None)
        return list(declared()) if callable(declared) else None
    return tool_schemas(list(ro.tools)) if ro.tools else None


def multi_turn(cfg, engine, model, processor):
    """`engine` itself for a single-turn run, else a `MultiTurnEngine` around it with the run's environment and
    limits."""
    factory = environment_factory(cfg)
    if factory is None:
        return engine
    ro = cfg.rollout
    return MultiTurnEngine(engine, model, processor, factory,
                           TurnLimits(ro.max_turns, ro.max_tool_calls, ro.max_total_tokens, ro.max_images),
                           reuse_cache=ro.reuse_turn_cache, first_view_max_pixels=cfg.data.max_pixels)


def check_multi_turn(cfg) -> None:
    """Fail before loading anything on a multi-turn setting that cannot run: unknown tools or environment, or
    limits below 1."""
    from mmrft.errors import ConfigError
    from mmrft.tools import ENVIRONMENTS, TOOLS

    ro = cfg.rollout
    if not (ro.tools or ro.environment):
        return
    for key, registry, names in (("tools", TOOLS, list(ro.tools)),
                                 ("environment", ENVIRONMENTS, [ro.environment] if ro.environment else [])):
        for name in names:
            try:
                registry[name]
            except KeyError as e:
                raise ConfigError(f"rollout.{key}: {e.args[0]}") from None
    for key in ("max_turns", "max_tool_calls", "max_total_tokens", "max_images"):
        if getattr(ro, key) < 1:
            raise ConfigError(f"rollout.{key}: {getattr(ro, key)} is not >= 1")

