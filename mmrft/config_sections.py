"""The sections of a run's config (`model`, `data`, `rollout`, `algorithm`, ...), one dataclass each, every field
with its help text. `mmrft.config` puts them together in `Config` and loads them from YAML and overrides; import
them from there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING


def _help(text: str, default: Any = MISSING, factory: Any = None):
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class LoraConfig:
    enabled: bool = _help("train a LoRA adapter (peft) instead of all weights", False)
    r: int = _help("LoRA rank", 16)
    alpha: int = _help("LoRA alpha (scale = alpha / r)", 32)
    dropout: float = _help("LoRA dropout", 0.0)
    target_modules: list[str] = _help(
        "module names to adapt", factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    language_only: bool = _help(
        "adapt only modules outside the family's vision/audio tower and projector (see mmrft.models.families)", True)


@dataclass
class ModelConfig:
    path: str = _help("local directory of a Hugging Face image-text-to-text checkpoint", "")
    dtype: str = _help("float32 | bfloat16 | float16", "float32")
    freeze_vision: bool = _help("freeze the vision tower and projector", False)
    gradient_checkpointing: bool = _help("trade compute for memory in the policy forward", False)
    lora: LoraConfig = _help("LoRA settings", factory=LoraConfig)


@dataclass
class DataConfig:
    train: str = _help("training data: .jsonl, .parquet, a directory with data.jsonl, or a `datasets` directory", "")
    eval: Any = _help(
        "held-out data evaluated before/after and every trainer.eval_every steps: a path (metrics eval/...), or a "
        "mapping split name -> path, e.g. {id: data/count-test, ood: data/shapes-test} (metrics eval/<split>/...)",
        None)
    eval_limit: Optional[int] = _help("evaluate on at most this many held-out samples (per split)", None)
    prompt_format: str = _help("r1 (<think>…</think><answer>…</answer>) | plain", "r1")
    system_prompt: Optional[str] = _help("system message; None keeps the chat template's default", None)
    skip_bad_rows: bool = _help("report and skip malformed rows instead of stopping", False)
    lazy: Optional[bool] = _help(
        "read the data lazily: every row checked in one streamed pass, then kept as memory-mapped Arrow (jsonl, json "
        "and parquet converted once into data.cache_dir) and made a sample only when drawn, so host memory does not "
        "grow with the row count; None: lazily when a dataset's files total more than 64 MiB", None)
    validate_media: Optional[bool] = _help(
        "open every image, video and audio file while loading (streamed, bad rows reported like any other); None: "
        "yes when loading eagerly, no when lazily (an unreadable file then stops the step whose batch holds it)", None)
    cache_dir: Optional[str] = _help(
        "where lazily read jsonl, json and parquet files are converted to Arrow (never beside the data); None: "
        "$MMRFT_DATA_CACHE, else $XDG_CACHE_HOME/mmrft/data (~/.cache/mmrft/data)", None)
    train_limit: Optional[int] = _help("use only the first N training samples (e.g. few labels for SFT)", None)
    sampler: str = _help("which prompts an RL step draws: uniform | difficulty (a curriculum over "
                         "metadata.difficulty) | pass_rate (prompts whose measured pass rate is in [low, high] "
                         "first) | a registered name or module:Class (mmrft.train.samplers)", "uniform")
    sampler_options: dict[str, Any] = _help("keyword options of the sampler", factory=dict)
    max_pixels: Optional[int] = _help(
        "downsize prompt images to at most this many pixels (w*h) before the processor: the resolution the model is "
        "given (tools such as zoom_in still crop the original); None: as the processor sizes them", None)
    video_fps: float = _help("frames sampled per second of video", 2.0)
    video_max_frames: int = _help("at most this many frames per video (spread over the whole video)", 16)
    video_min_frames: int = _help("at least this many frames per video", 2)
    video_max_pixels: Optional[int] = _help("downsize video frames to at most this many pixels (w*h)", None)
    max_video_seconds: Optional[float] = _help("reject longer videos with an error naming the file", 600.0)
    max_audio_seconds: Optional[float] = _help(
        "reject longer audio with an error naming the file; None: the model's feature-extractor window", None)
    video_time_hint: bool = _help("tell the model each video's duration and frame rate in the prompt text", True)
    box_convention: str = _help(
        "family: rewrite pixel boxes of grounding samples into the model family's convention (Qwen2-VL 0-1000, "
        "Qwen2.5-VL resized pixels) | data: keep the data's boxes", "family")


@dataclass
class RolloutConfig:
    engine: str = _help(
        "hf: transformers `generate` with the policy itself (CPU or GPU) | vllm: a vLLM engine in each training "
        "process, holding its own copy of the weights, synced after every update (CUDA only; `pip install "
        "'mmrft[vllm]'`)", "hf")
    group_size: int = _help("completions sampled per prompt (G)", 8)
    prompts_per_step: int = _help("prompts per RL step", 8)
    max_new_tokens: int = _help("completion length limit in tokens", 32)
    temperature: float = _help("sampling temperature (also applied to the training log-probs)", 1.0)
    top_p: float = _help("nucleus sampling", 1.0)
    top_k: int = _help("top-k sampling; 0 disables", 0)
    augment: Optional[str] = _help(
        "rollout-time augmentation (NoisyRollout): an image perturbation of mmrft.data.augment (gaussian | blur | "
        "brightness_contrast | module:function) that a share of each group's completions are sampled on; the update "
        "uses the clean image. Single-turn only. None: off", None)
    augment_share: float = _help("share of the G completions sampled on the perturbed image", 0.5)
    augment_options: dict[str, Any] = _help("options of the perturbation, e.g. {noise_step: 500} for gaussian",
                                            factory=dict)
    augment_anneal: str = _help("strength over training: none | linear | sigmoid (mmrft.data.augment.anneal)",
                                "sigmoid")
    augment_anneal_coef: float = _help("sigmoid anneal: steepness", 30.0)
    augment_anneal_mid: float = _help("sigmoid anneal: where the strength halves, as a share of trainer.steps", 0.5)
    correction: str = _help(
        "how the update corrects for the sampler's log-probs differing from the trainer's (vLLM kernels, bf16, a "
        "stale policy): none | tis | seq_tis | token_mask | seq_mask | icepop | seq_mask_tis | a registered name "
        "(mmrft.algorithms.ROLLOUT_CORRECTIONS); anything but none makes the engine return its log-probs", "none")
    correction_options: dict[str, Any] = _help("options of the correction, e.g. {cap: 2.0} for tis", factory=dict)
    overlap: bool = _help(
        "one-step off-policy: sample step t+1's batch while step t updates, from weights one update old (engine=hf "
        "samples from a copy of the policy: its weights twice in memory); pair with a rollout.correction", False)
    share_prefill: bool = _help(
        "prefill each prompt (and encode its image) once and repeat its KV cache for the G samples; false: "
        "`generate(num_return_sequences=G)`, which prefills every copy (same samples, for measuring)", True)
    decoder: str = _help(
        "engine=hf: loop (mmrft's sampling loop: rows leave the batch as they end, mmrft.rollout.decode) | generate "
        "(transformers' generate, which steps every row until the last one ends)", "loop")
    share_prompt_forward: bool = _help(
        "training forward: each prompt once, its KV cache repeated for the G completions (same log-probs); false: "
        "the G full sequences (for measuring; activation checkpointing always uses the full sequences)", True)
    tools: list[str] = _help(
        "tools the policy may call in multi-turn trajectories: registered names (zoom_in, rotate, calculator) or "
        "`my_pkg.tools:fn`; empty: single-turn rollouts", factory=list)
    tool_list: bool = _help(
        "multi-turn: render the tools' schemas into every prompt (the chat template's tool list, as real checkpoints "
        "expect); false: the policy calls them without being shown the list, for a model SFT'd on its calls (the "
        "tools demo's tiny model: the ~300-token list, which it cannot read, kept it from learning to use the "
        "question; docs/tools.md)", True)
    environment: Optional[str] = _help(
        "a registered environment (or `my_pkg.envs:Class`) that answers each assistant turn, for stateful episodes; "
        "None: the tools above, if any", None)
    environment_options: dict[str, Any] = _help("keyword options of the environment", factory=dict)
    max_turns: int = _help("multi-turn: assistant turns per trajectory", 4)
    max_tool_calls: int = _help("multi-turn: tool calls per trajectory (one more ends it)", 8)
    max_total_tokens: int = _help(
        "multi-turn: response tokens per trajectory, tool turns included (rollout.max_new_tokens caps each turn)",
        1024)
    max_images: int = _help("multi-turn: images the tools may return per trajectory", 4)
    tool_timeout_s: float = _help("time limit of one tool call in seconds (a time-out is an error the model reads)",
                                  5.0)
    reuse_turn_cache: bool = _help(
        "multi-turn: continue each trajectory from its KV cache, its tool turn appended (the prompt, its images and "
        "earlier turns are not computed again), where the family allows it (Qwen-VL); false: prefill each running "
        "trajectory's whole sequence again at every turn (other families always do)", True)
    vllm_gpu_memory_utilization: float = _help(
        "engine=vllm: fraction of the GPU's memory vLLM may take for its weights, activations and KV cache; the rest "
        "is left to training (policy, gradients, optimizer state)", 0.3)
    vllm_sleep_level: int = _help(
        "engine=vllm: free vLLM's GPU memory while the policy trains: 0 never, 1 weights offloaded to CPU memory "
        "and KV cache dropped, 2 both dropped (the weights come back from the policy at the next sync)", 1)
    vllm_max_model_len: Optional[int] = _help(
        "engine=vllm: longest prompt + completion in tokens; None: the model's context length (smaller leaves "
        "more of vllm_gpu_memory_utilization to the KV cache)", None)
    vllm_kwargs: dict[str, Any] = _help(
        "engine=vllm: further `vllm.LLM` keyword arguments, e.g. {enforce_eager: true, max_num_seqs: 256}",
        factory=dict)


@dataclass
class AlgorithmConfig:
    name: str = _help("preset name; the fields below are its knobs", "grpo")
    advantage: str = _help("advantage estimator (mmrft.algorithms.ADVANTAGE_ESTIMATORS)", "grpo")
    advantage_options: dict[str, Any] = _help(
        "further keyword options of the advantage estimator, e.g. {eps: 1e-8} (its keyword parameters named like an "
        "algorithm.* knob get that knob; these add to or override them)", factory=dict)
    whiten_advantages: bool = _help(
        "after the estimator, whiten the advantages over the batch's valid tokens, (A - mean) / std (PPO's GAE "
        "whitening; the outcome estimators normalise by themselves)", False)
    policy_loss: str = _help("policy loss (mmrft.algorithms.POLICY_LOSSES)", "ppo_clip")
    policy_loss_options: dict[str, Any] = _help(
        "further keyword options of the policy loss (clip_low, clip_high and dual_clip below reach every loss whose "
        "signature names them; these add to or override them)", factory=dict)
    loss_agg_mode: str = _help(
        "loss aggregation (mmrft.algorithms.AGGREGATIONS): token-mean | seq-mean-token-mean | seq-mean-token-sum | "
        "seq-mean-token-sum-norm", "token-mean"
    )
    clip_low: float = _help("lower ratio clip epsilon", 0.2)
    clip_high: float = _help("upper ratio clip epsilon (DAPO clip-higher: 0.28)", 0.2)
    dual_clip: Optional[float] = _help("dual-clip bound for negative advantages (e.g. 3.0); None disables", None)
    kl_coef: float = _help("weight of the KL-to-reference loss term; 0 skips the reference model", 0.0)
    kl_estimator: str = _help("k1 | k2 | k3 (for the loss term; a KL folded into the reward is k1)", "k3")
    kl_in_reward: bool = _help(
        "subtract kl_coef * k1 from the rewards (per token for gae, summed per completion otherwise) instead of "
        "adding a KL loss term", False)
    entropy_coef: float = _help("entropy bonus weight", 0.0)
    ppo_epochs: int = _help("passes over each rollout batch", 1)
    minibatches: int = _help("optimizer steps per epoch over the rollout batch", 1)
    micro_batch_size: int = _help("sequences per forward/backward (gradient accumulation)", 64)
    length_sorted_micro_batches: bool = _help(
        "put groups of similar completion length in the same micro-batch and cut each micro-batch's padding to its "
        "longest completion (the loss is unchanged; less work when micro-batches are smaller than the batch)", True)
    filter_zero_variance: bool = _help("drop groups whose rewards are all equal (DAPO dynamic sampling)", False)
    max_resample_rounds: int = _help(
        "with filter_zero_variance: extra rounds of prompts drawn per step to refill dropped groups", 3)
    overlong_buffer: int = _help(
        "DAPO soft overlong punishment: reward penalty rising linearly over the last N tokens before "
        "rollout.max_new_tokens (0 disables)", 0)
    overlong_penalty: float = _help("penalty at the length limit for overlong_buffer", 1.0)
    mask_truncated: bool = _help("exclude completions that hit max_new_tokens from the loss (DAPO overlong filtering)", False)


@dataclass
class CriticConfig:
    """The value model of PPO (used when algorithm.advantage is `gae`)."""

    model_path: Optional[str] = _help(
        "checkpoint the critic's backbone starts from; None: model.path (the critic starts as a copy of the policy, "
        "as verl and OpenRLHF do); model.dtype/lora/freeze_vision apply to it too", None)
    lr: Optional[float] = _help("critic learning rate (AdamW); None: trainer.lr", None)
    value_clip: Optional[float] = _help("clip range of the value loss around the rollout's values; None: unclipped", 0.2)
    gamma: float = _help("GAE discount", 1.0)
    lam: float = _help("GAE lambda", 0.95)


@dataclass
class RewardsConfig:
    weights: dict[str, float] = _help(
        "reward name -> weight; the name `task` stands for each sample's own reward", factory=lambda: {"task": 1.0}
    )
    default: str = _help("reward for samples whose row names none", "exact")
    timeout_s: float = _help("time limit per reward call in seconds", 5.0)
    workers: int = _help("reward worker processes (0 = in-process, for debugging)", 1)
    on_error: str = _help(
        "an exception in reward code or a failed judge verdict: `log` (score 0, count it, log it with the sample id, "
        "go on) | `raise` (stop the run)", "log")
    judges: dict[str, Any] = _help(
        "model-based rewards, name -> {kind: http | local | reward_model | vl_reward_model | module:Class, gate: "
        "always | no_rule | <rule reward>, cache: true, ...the kind's options}; weigh them by name in `weights` "
        "(docs/judges.md)", factory=dict)


@dataclass
class SFTConfig:
    steps: int = _help("optimizer steps", 300)
    batch_size: int = _help("samples per step", 32)
    lr: float = _help("learning rate", 1e-3)
    warmup_steps: int = _help("linear warm-up steps", 20)
    lr_schedule: str = _help("after warm-up: constant | linear | cosine (decay to 0 at the last step)", "constant")


@dataclass
class TrainerConfig:
    output_dir: str = _help("run directory (created; must not hold another run unless overwrite)", "runs/rl")
    overwrite: bool = _help("allow writing into an existing run directory", False)
    steps: int = _help("RL steps", 100)
    lr: float = _help("learning rate (AdamW)", 1e-4)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    warmup_steps: int = _help("linear warm-up steps", 0)
    lr_schedule: str = _help("after warm-up: constant | linear | cosine (decay to 0 at the last step)", "constant")
    max_grad_norm: float = _help("gradient clipping norm", 1.0)
    seed: int = _help("random seed", 0)
    eval_every: int = _help("evaluate on data.eval every N steps (0: only before and after)", 0)
    log_every: int = _help("print a log line every N steps", 10)
    threads: int = _help("torch CPU threads (0: torch default)", 0)
    progress: bool = _help("show progress bars (plain log lines every log_every steps when not a terminal)", True)
    checkpoint_every: int = _help("save a resumable checkpoint every N RL steps (0: only on a stop signal)", 0)
    keep_checkpoints: int = _help("keep the newest N checkpoints, delete older ones", 2)
    save_best: bool = _help(
        "also keep the model of the best evaluation on the first held-out split (step 0, every eval_every steps, the "
        "end; a tie keeps the earlier) in RUN/best, with best.json giving its step and accuracy", False)
    resume: Optional[str] = _help(
        "continue a run from its newest valid checkpoint: a run directory, or `auto` (trainer.output_dir if it "
        "has one, else a fresh start)", None)
    flat_reward_warning_steps: int = _help(
        "warn when for this many steps in a row every group's completions got the same reward (no advantage: a "
        "collapsed or a solved policy); 0: never", 10)
    max_nonfinite_steps: int = _help(
        "stop the run after this many RL steps in a row whose update was skipped for a non-finite gradient", 3)
    fsdp: bool = _help(
        "under torchrun: shard parameters, gradients and optimizer states over the processes with FSDP2, for models "
        "whose training state does not fit one device (full fine-tuning or LoRA, PPO's critic too). Sampling with "
        "rollout.engine=hf gathers the full weights; with vllm, each weight sync does", False)


@dataclass
class TrackingConfig:
    tensorboard: bool = _help("write TensorBoard events to RUN/tensorboard (metrics.jsonl is always written)", True)
    wandb: bool = _help("also log to Weights & Biases (needs `pip install wandb`)", False)
    mlflow: bool = _help("also log to MLflow: MLFLOW_TRACKING_URI, else RUN/mlruns (needs `pip install mlflow`)", False)
    project: str = _help("W&B project / MLflow experiment name", "mmrft")
    run_name: Optional[str] = _help("run name in W&B / MLflow; None: the run directory's name", None)
    rollouts_every: int = _help(
        "dump the step's prompts, completions, extracted answers, rewards and advantages to RUN/rollouts/ every N "
        "steps, for `mmrft view` (0: never)", 0)


@dataclass
class BenchmarkEvalConfig:
    name: str = _help("benchmark adapter (see `mmrft eval --benchmark`)", "")
    data: str = _help("directory with the benchmark's released files", "")
    split: Optional[str] = _help("split; None: the benchmark's usual evaluation split", None)
    limit: Optional[int] = _help("only the first N samples (keeps evaluation during training cheap)", None)
    options: dict[str, Any] = _help("adapter options, e.g. {box_format: norm1000} for refcoco", factory=dict)


@dataclass
class EvalConfig:
    benchmarks: list[BenchmarkEvalConfig] = _help(
        "benchmarks scored (greedy) whenever the held-out data is: before RL, every trainer.eval_every steps, "
        "after; results under RUN/eval/<name>/step_<N>/", factory=list)
    max_new_tokens: Optional[int] = _help(
        "generation budget of every evaluation (held-out data, benchmarks, `mmrft eval --config`); None: "
        "rollout.max_new_tokens", None)
    batch_size: int = _help(
        "prompts per generation batch of every evaluation (held-out data, benchmarks, `mmrft eval --config`)", 64)
    keep_records: bool = _help(
        "write each held-out evaluation's answers, one line per item (id, answer, reward, correct, trajectory), to "
        "RUN/eval/held_out/[<split>/]step_<N>.jsonl, for item-by-item comparisons (mmrft.eval.records)", True)


@dataclass
class HealthConfig:
    """Training-health alarms (`mmrft.train.health`): each rule's threshold (0 turns it off), a warning with what to
    try when it fires, `health/<alarm>` in the step metrics, and `stop` to end the run cleanly on chosen alarms."""

    patience: int = _help("steps in a row a condition must hold before its alarm fires", 3)
    baseline_steps: int = _help("the first steps whose mean response length (and train reward) are the baseline", 5)
    entropy_min: float = _help("entropy_collapse: actor/entropy (nats per token) below this", 0.05)
    length_min_ratio: float = _help("length_collapse: mean response length below this x its baseline", 0.25)
    length_max_ratio: float = _help("length_explosion: mean response length above this x its baseline", 4.0)
    truncated_max: float = _help("length_explosion also: a share of completions cut at max_new_tokens above this",
                                 0.5)
    format_window: int = _help("format_gaming: steps compared (first half vs last half); 0: off", 20)
    format_rise: float = _help("format_gaming: the format reward rose by at least this ...", 0.3)
    accuracy_gain: float = _help("... while accuracy rose by less than this", 0.02)
    heldout_drop: float = _help("heldout_drop: held-out accuracy this far below its best while the train reward "
                                "rose", 0.05)
    kl_max: float = _help("kl_blowup: actor/kl or actor/approx_kl above this", 1.0)
    clip_frac_max: float = _help("clip_blowup: actor/clip_frac above this", 0.5)
    stop: list[str] = _help("alarms that stop the run (after the step, with a checkpoint), e.g. [entropy_collapse]",
                            factory=list)
