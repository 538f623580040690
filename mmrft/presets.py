"""Algorithm presets: `algorithm.name` -> the published default knobs of that method.

`load_config` applies a preset as a layer between the dataclass defaults and the user's settings:

    dataclass defaults  <-  PRESETS[algorithm.name]  <-  YAML file  <-  command-line overrides

so `algorithm.name=dapo` switches every knob the user did not set, and any knob set in the YAML file or on the
command line wins over the preset. The preset name itself is read from the command line first, then the YAML file,
else the default `grpo`.

Every preset spells out the same full set of algorithm knobs (`PRESET_KNOBS`), each with where its number comes
from. `micro_batch_size` and `length_sorted_micro_batches` are memory/speed settings, not part of any method, and
are never set by a preset; nor are `advantage_options` / `policy_loss_options`, the user's extra options for the
chosen estimator and loss. Batch shape (`rollout.group_size`, `rollout.prompts_per_step`) and learning rate are
compute-budget choices that every paper sets for its own model and hardware (DeepSeekMath samples 64 completions per
prompt, DAPO 16), so no preset touches them: copying a 7B-32B recipe's batch onto a small multimodal run would be
wrong more often than right. Presets may also set `rollout.*` / `rewards.*` values where a method prescribes them;
none needs to yet. Never put a dict-valued field (e.g. `rewards.weights`) in a preset: a dict the user writes
replaces the default whole, so the preset's entries would silently vanish.

Two remarks that apply to several presets:

* `algorithm.minibatches` counts optimizer steps per rollout batch; the trainer splits by prompt group, so it is
  effectively capped at `rollout.prompts_per_step`. With `ppo_epochs == minibatches == 1` the update is on-policy,
  the importance ratio is exactly 1 and the clip range has no effect (the loss is then plain REINFORCE with the
  chosen advantage). Methods whose clip range matters (DAPO's clip-higher, GSPO's tiny sequence clip, PPO) are
  therefore given the number of updates per rollout batch their paper uses.
* mmrft's KL is a loss term (`kl_coef * k_n(logp, ref_logp)` added to each token's loss) unless
  `algorithm.kl_in_reward` is set: then `kl_coef * k1` is subtracted from the reward instead, per token for PPO's
  GAE and summed over the completion for the outcome estimators. Each preset says which form its paper uses.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from mmrft.errors import ConfigError

__all__ = ["PRESETS", "PRESET_KNOBS", "apply_preset", "preset_names"]

# The algorithm knobs every preset sets explicitly (all of AlgorithmConfig except `name` and `micro_batch_size`).
PRESET_KNOBS = (
    "advantage",
    "whiten_advantages",
    "policy_loss",
    "loss_agg_mode",
    "clip_low",
    "clip_high",
    "dual_clip",
    "kl_coef",
    "kl_estimator",
    "kl_in_reward",
    "entropy_coef",
    "ppo_epochs",
    "minibatches",
    "filter_zero_variance",
    "max_resample_rounds",
    "overlong_buffer",
    "overlong_penalty",
    "mask_truncated",
)

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # GRPO -- Shao et al. 2024, "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models"
    # (arXiv:2402.03300), Sec. 4.1 (objective, Eq. 3-4) and its RL training setup.
    "grpo": {
        "algorithm": {
            # Outcome supervision: A_i = (r_i - mean(r)) / std(r) over the G completions of a prompt (Sec. 4.1.2).
            "advantage": "grpo",
            "whiten_advantages": False,
            # PPO clipped surrogate with a per-token ratio (Eq. 3).
            "policy_loss": "ppo_clip",
            # Eq. 3 averages each completion's tokens (1/|o_i|) and then the G completions (1/G).
            "loss_agg_mode": "seq-mean-token-mean",
            # The paper does not print epsilon; 0.2 is PPO's (Schulman et al. 2017) and the value GRPO
            # implementations (TRL, verl, OpenRLHF) use. Symmetric: clip-higher is DAPO's change, not GRPO's.
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            # "The KL coefficient is 0.04", with the unbiased estimator pi_ref/pi - log(pi_ref/pi) - 1 (Eq. 4) = k3.
            # R1-style recipes use little or no KL (DeepSeek-R1 reports 0.001; DAPO and Dr.GRPO use 0): choose
            # the `dr_grpo` / `dapo` / `gspo` preset for that, or set algorithm.kl_coef=0 (which also saves the
            # reference-model copy). This preset reproduces the paper it is named after.
            "kl_coef": 0.04,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            # No entropy bonus in Eq. 3.
            "entropy_coef": 0.0,
            # "The policy model only has a single update following each exploration stage": on-policy, one step.
            "ppo_epochs": 1,
            "minibatches": 1,
            # Groups with equal rewards get A = 0 and stay in the batch (and in the loss denominators).
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # Dr.GRPO -- Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective" (arXiv:2503.20783),
    # Sec. 3 ("GRPO Done Right"): removes GRPO's two normalisations, the length term 1/|o_i| and the std.
    "dr_grpo": {
        "algorithm": {
            # A_i = r_i - mean(r): no division by the group std (the question-level difficulty bias).
            "advantage": "dr_grpo",
            "whiten_advantages": False,
            # Dr.GRPO keeps GRPO's token-level PPO clipped surrogate.
            "policy_loss": "ppo_clip",
            # No 1/|o_i| (the response-length bias): token sums divided by a constant (the max generation length),
            # which is what their reference code does -- mmrft's `seq-mean-token-sum-norm`.
            "loss_agg_mode": "seq-mean-token-sum-norm",
            # Unchanged from GRPO.
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            # Dr.GRPO's objective has no KL term: with rule-based verifiers there is no reward model to
            # over-optimise, and the paper's R1-Zero-style runs train without a reference policy.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # The paper changes the advantage and the aggregation, not GRPO's single on-policy update.
            "ppo_epochs": 1,
            "minibatches": 1,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # DAPO -- Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale" (arXiv:2503.14476),
    # Sec. 3 (the four techniques) and Sec. 4.1 (training details).
    "dapo": {
        "algorithm": {
            # DAPO keeps GRPO's group-normalised advantage (r_i - mean) / std.
            "advantage": "grpo",
            "whiten_advantages": False,
            "policy_loss": "ppo_clip",
            # Sec. 3.3 "Token-Level Policy Gradient Loss": 1 / sum_i |o_i| over all tokens of the batch.
            "loss_agg_mode": "token-mean",
            # Sec. 3.1 "Clip-Higher": epsilon_low = 0.2, epsilon_high = 0.28 (decoupled).
            "clip_low": 0.2,
            "clip_high": 0.28,
            "dual_clip": None,
            # Sec. 2.3 "Removing KL Divergence": the KL term is excluded from the objective.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # Sec. 4.1: 512 prompts x 16 responses per rollout step, mini-batch 512, i.e. 16 gradient updates per
            # rollout step. Those off-policy steps are what clip-higher acts on (with one on-policy step the ratio
            # is 1 and 0.28 would be inert). Counted in prompt groups, so capped at rollout.prompts_per_step.
            "ppo_epochs": 1,
            "minibatches": 16,
            # Sec. 3.2 "Dynamic Sampling": drop groups whose accuracy is all 0 or all 1 and sample more prompts
            # until the batch is full again (bounded by max_resample_rounds below).
            "filter_zero_variance": True,
            # Sec. 3.2: "over-sample and filter out prompts with the accuracy equal to 1 and 0" until the batch
            # is full; the number of extra sampling rounds is bounded here (the paper does not give one).
            "max_resample_rounds": 3,
            # Sec. 3.4 soft overlong punishment: the paper uses a 4,096-token buffer before a 20,480-token limit
            # (a fifth of it). The buffer is in tokens and the limit is rollout.max_new_tokens, so no single
            # number fits every run: set algorithm.overlong_buffer to about max_new_tokens / 5 to match it.
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            # Overlong *filtering* (masking truncated samples) is the ablation DAPO replaced with the soft penalty.
            "mask_truncated": False,
        },
    },
    # GSPO -- Zheng et al. 2025, "Group Sequence Policy Optimization" (arXiv:2507.18071), Sec. 4 (Eq. 5-7) and
    # Sec. 5.1 (experimental setup).
    "gspo": {
        "algorithm": {
            # GSPO uses the group-normalised advantage of GRPO: (r_i - mean) / std.
            "advantage": "grpo",
            "whiten_advantages": False,
            # Sequence-level importance ratio s_i = (pi/pi_old)(y_i)^(1/|y_i|), clipped per sequence (Eq. 5-7).
            "policy_loss": "gspo",
            # Eq. 5 averages over the G sequences; with the token-form loss that is 1/|y_i| per sequence, then
            # the mean over sequences (see mmrft.algorithms.gspo).
            "loss_agg_mode": "seq-mean-token-mean",
            # Sec. 5.1: the clipping ranges in Eq. (5) are set to 3e-4 (left) and 4e-4 (right).
            "clip_low": 3e-4,
            "clip_high": 4e-4,
            "dual_clip": None,
            # The GSPO objective (Eq. 5) has no KL term.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # Sec. 5.1: each batch of rollout data is partitioned into four minibatches for gradient updates;
            # without them the sequence ratio is 1 and the clip is inert.
            "ppo_epochs": 1,
            "minibatches": 4,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # RLOO -- Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human
    # Feedback in LLMs" (arXiv:2402.14740), Sec. 3-4: REINFORCE with a leave-one-out baseline, the whole
    # completion treated as a single action.
    "rloo": {
        "algorithm": {
            # A_i = r_i - 1/(k-1) sum_{j != i} r_j over the k samples of a prompt. No std normalisation.
            "advantage": "rloo",
            "whiten_advantages": False,
            # With one on-policy update (below) the PPO ratio is exactly 1 and `ppo_clip` reduces to the plain
            # REINFORCE gradient -A_i * grad log pi(y_i|x), which is what the paper optimises (it argues clipping
            # is unnecessary in this regime). The clip range is kept at PPO's 0.2 but never binds.
            "policy_loss": "ppo_clip",
            # The completion is one action: log pi(y|x) = sum_t log pi(y_t|...), averaged over sequences.
            "loss_agg_mode": "seq-mean-token-sum",
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            # The paper subtracts beta * KL(pi || pi_ref) from the sequence *reward* (an RLHF setting with a learned
            # reward model); with verifiable rewards there is no reward model to over-optimise, so the preset uses
            # kl_coef = 0, as the KL-free verifiable-reward recipes (DAPO, Dr.GRPO) do. For the paper's form set
            # algorithm.kl_coef > 0 and algorithm.kl_in_reward=true (k1 summed over the completion, subtracted from
            # its reward).
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # On-policy REINFORCE: one gradient step per batch of samples.
            "ppo_epochs": 1,
            "minibatches": 1,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # REINFORCE++ -- Hu 2025, "REINFORCE++: A Simple and Efficient Approach for Aligning Large Language Models"
    # (arXiv:2501.03262; later versions add REINFORCE++-baseline for prompts sampled several times).
    # Which estimator: the paper's first form whitens the rewards over every token of the global batch (mmrft's
    # `reinforce_pp` estimator), meant for one sample per prompt. mmrft always samples G completions per prompt,
    # and for that setting the paper prescribes REINFORCE++-baseline: subtract the group mean, then whiten over the
    # batch's tokens (`reinforce_pp_baseline`). So the `reinforce_pp` preset uses `reinforce_pp_baseline`; set
    # algorithm.advantage=reinforce_pp for the group-free global normalisation.
    "reinforce_pp": {
        "algorithm": {
            "advantage": "reinforce_pp_baseline",
            "whiten_advantages": False,  # the estimator whitens over the batch's tokens itself
            # REINFORCE++ keeps PPO's clipped token-level ratio with epsilon = 0.2.
            "policy_loss": "ppo_clip",
            # The paper fixes no aggregation; token-mean is what its reference implementation (OpenRLHF, whose
            # policy loss averages over all tokens) uses.
            "loss_agg_mode": "token-mean",
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            # REINFORCE++-baseline regularises with a KL *loss* estimated with k2 (the v1 form subtracts a per-token
            # KL from the reward instead); the reference implementation's example uses
            # --init_kl_coef 1e-3 --use_kl_loss --kl_estimator k2.
            "kl_coef": 1e-3,
            "kl_estimator": "k2",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # The paper prescribes no particular number of updates per rollout batch; one on-policy step (the
            # clip range then has no effect). Raise algorithm.minibatches for off-policy mini-batch updates.
            "ppo_epochs": 1,
            "minibatches": 1,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # PPO -- Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv:1707.06347), as used for LLMs by
    # Ziegler et al. 2019 (openai/lm-human-preferences) and Ouyang et al. 2022 (InstructGPT, arXiv:2203.02155):
    # a critic (value model, `critic:` block) gives per-token values, GAE turns the per-token rewards into
    # advantages, and policy and critic are both updated for several epochs of minibatches per rollout batch.
    "ppo": {
        "algorithm": {
            # Generalised Advantage Estimation (Schulman et al. 2016) from the critic's per-token values.
            "advantage": "gae",
            # lm-human-preferences whitens the GAE advantages over the batch (`whiten(advantages)`).
            "whiten_advantages": True,
            "policy_loss": "ppo_clip",
            # lm-human-preferences takes the plain mean of the clipped loss over all response tokens.
            "loss_agg_mode": "token-mean",
            # epsilon = 0.2 (Schulman et al. 2017 Sec. 6.1 best setting; lm-human-preferences cliprange = 0.2).
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            # InstructGPT: a per-token KL penalty in the *reward*, beta = 0.02, estimated as log pi - log pi_ref
            # (k1) on the sampled tokens; the outcome reward is added on the last token.
            "kl_coef": 0.02,
            "kl_estimator": "k3",  # unused while kl_in_reward is on (the reward-side KL is k1)
            "kl_in_reward": True,
            # No entropy bonus in LM fine-tuning (lm-human-preferences' loss is policy + value only).
            "entropy_coef": 0.0,
            # Several epochs of minibatch SGD per rollout batch is what defines PPO (Schulman et al. 2017, Alg. 1):
            # 4 epochs as in lm-human-preferences (noptepochs = 4); 4 minibatches per epoch.
            "ppo_epochs": 4,
            "minibatches": 4,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
        "critic": {
            # lm-human-preferences: gamma = 1, lam = 0.95, cliprange_value = 0.2.
            "gamma": 1.0,
            "lam": 0.95,
            "value_clip": 0.2,
        },
    },
    # CISPO -- MiniMax 2025, "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention"
    # (arXiv:2506.13585), Sec. 3.1: clip the importance-sampling weight (a constant) instead of the token update.
    "cispo": {
        "algorithm": {
            # The objective's advantage is GRPO's group-relative one, (r_i - mean) / std.
            "advantage": "grpo",
            "whiten_advantages": False,
            "policy_loss": "cispo",
            # The CISPO objective divides by the number of tokens of the whole batch, 1 / sum_i |o_i|.
            "loss_agg_mode": "token-mean",
            # "We did not impose a lower bound on the IS weight" (a large epsilon_low): 1.0 puts the bound at 0.
            "clip_low": 1.0,
            # The paper prints no epsilon_high. 4.0 caps the weight at 5, the epsilon_max of the ScaleRL paper
            # (Khatri et al. 2025, arXiv:2510.13786) that TRL recommends for loss_type="cispo" (GRPOConfig
            # epsilon_high=5.0). Others differ: verl's CISPO example 0.2, Tinker's default cap 4, NeMo RL's 6.
            "clip_high": 4.0,
            "dual_clip": None,
            # The CISPO objective has no KL term.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # The IS weight only acts off-policy. The paper gives no update count; verl's CISPO example
            # (examples/cispo_trainer) takes 1024 prompts per step in minibatches of 256: four updates.
            "ppo_epochs": 1,
            "minibatches": 4,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # SAPO -- Gao et al. 2025 (Qwen team), "Soft Adaptive Policy Optimization" (arXiv:2511.20347): a sigmoid gate
    # on the token ratio instead of a hard clip, temperatures tau_pos = 1.0 / tau_neg = 1.05 (the defaults of
    # mmrft.algorithms.sapo, as in verl's actor config and TRL's sapo_temperature_pos/neg).
    "sapo": {
        "algorithm": {
            # Group-normalised advantage (TRL's reproduction config: scale_rewards="group"; verl: grpo).
            "advantage": "grpo",
            "whiten_advantages": False,
            "policy_loss": "sapo",
            # 1/G sum_i 1/|y_i| sum_t: TRL aggregates sapo like grpo, verl forces seq-mean-token-mean for it.
            "loss_agg_mode": "seq-mean-token-mean",
            # SAPO has no hard clip; the sapo loss does not read these (PPO's values, so switching
            # algorithm.policy_loss back to ppo_clip gives GRPO's clip).
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            # The SAPO objective has no KL term (verl's SAPO examples: use_kl_loss=False).
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # The gate only acts off-policy. verl's SAPO example on the paper's model (Qwen3-30B-A3B-Base,
            # examples/sapo_trainer) takes 256 prompts per step in minibatches of 32: eight updates.
            "ppo_epochs": 1,
            "minibatches": 8,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # GMPO -- Zhao et al. 2025, "Geometric-Mean Policy Optimization" (arXiv:2507.20673), and the authors' script
    # callsys/GMPO scripts/qwen2.5-math-7b-gmpo.sh (an oat/Dr.GRPO code base).
    "gmpo": {
        "algorithm": {
            # --critic_type grpo: (r_i - mean) / std within the group.
            "advantage": "grpo",
            "whiten_advantages": False,
            "policy_loss": "gmpo",
            # 1/G sum_i of the per-sequence objective (mmrft.algorithms.gmpo's token form needs this mode).
            "loss_agg_mode": "seq-mean-token-mean",
            # Token log-ratios clipped to (-0.4, 0.4), i.e. ratios to (e^-0.4, e^0.4) (--cliprange 0.4; Sec. 4).
            "clip_low": 0.4,
            "clip_high": 0.4,
            "dual_clip": None,
            # --beta 0: no KL term.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # --num_ppo_epochs 1; 128 prompts x 8 samples per rollout, --train_batch_size 128 samples per optimizer
            # step: eight updates per rollout batch.
            "ppo_epochs": 1,
            "minibatches": 8,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # GPG -- Chu et al. 2025, "GPG: A Simple and Strong Reinforcement Learning Baseline for Model Reasoning"
    # (arXiv:2504.02546): the plain policy gradient, no surrogate, no critic, no reference model.
    "gpg": {
        "algorithm": {
            # F_norm = 1 (the best row of the paper's ablation): A_i = r_i - mean(r), no std division.
            "advantage": "dr_grpo",
            "whiten_advantages": False,
            # L = -A * log pi (no ratio, no clip).
            "policy_loss": "gpg",
            # verl's GPG integration averages over the batch's tokens (its agg_loss token-mean default).
            "loss_agg_mode": "token-mean",
            # Not read by the gpg loss (PPO's values, for switching algorithm.policy_loss back).
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            # GPG drops the reference model and the KL term.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # No surrogate means no off-policy correction: one on-policy step per batch.
            "ppo_epochs": 1,
            "minibatches": 1,
            # The paper rescales the gradient by alpha = B / (B - M), M the samples with zero advantage (groups with
            # equal rewards), so the batch mean runs over the informative samples only. Dropping those groups
            # without refilling the batch does the same: the loss denominators then count only the others.
            "filter_zero_variance": True,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # Clip-Cov -- Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models"
    # (arXiv:2505.22617), Sec. 4, with the authors' recipe recipe/entropy/7b_clip_cov.sh (verl, before the recipes
    # moved to verl-recipe). The cut fraction 2e-4 and the covariance band (1, 5) are mmrft.algorithms.clip_cov's
    # defaults (the paper's and verl's).
    "clip_cov": {
        "algorithm": {
            "advantage": "grpo",
            "whiten_advantages": False,
            "policy_loss": "clip_cov",
            # loss_agg_mode="token-mean".
            "loss_agg_mode": "token-mean",
            # clip_ratio_low = clip_ratio_high = 1: PPO's clip widened to [0, 2], the covariance cut doing the work.
            "clip_low": 1.0,
            "clip_high": 1.0,
            # verl's clip_cov applies no dual clip (the recipe's clip_ratio_c=10 is not read by it).
            "dual_clip": None,
            # kl_coef = kl_loss_coef = 0.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # 256 prompts per step, ppo_mini_batch_size 32: eight updates per rollout batch.
            "ppo_epochs": 1,
            "minibatches": 8,
            # enable_filter_groups=True (metric acc): DAPO's dynamic sampling. Prompts are drawn 3x the batch at a
            # time (gen_prompt_bsz) for at most 10 draws (max_num_gen_batches): up to 30 batches' worth, i.e. 29
            # extra rounds of rollout.prompts_per_step prompts here.
            "filter_zero_variance": True,
            "max_resample_rounds": 29,
            # enable_overlong_buffer=False.
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # KL-Cov -- Cui et al. 2025 (as clip_cov), with the recipe recipe/entropy/7b_kl_cov.sh: k = 2e-3 of the tokens
    # (the 7B recipe; 2e-4 for 32B) and coefficient 1, mmrft.algorithms.kl_cov's defaults.
    "kl_cov": {
        "algorithm": {
            "advantage": "grpo",
            "whiten_advantages": False,
            "policy_loss": "kl_cov",
            "loss_agg_mode": "token-mean",
            # The recipe's clip_ratio_low = clip_ratio_high = 0.2; kl_cov clips nothing and does not read them.
            "clip_low": 0.2,
            "clip_high": 0.2,
            "dual_clip": None,
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # 256 prompts per step in minibatches of 32; the |log ratio| penalty is 0 on-policy, so it needs these.
            "ppo_epochs": 1,
            "minibatches": 8,
            # Dynamic sampling as in the Clip-Cov recipe (3x prompts per draw, at most 10 draws).
            "filter_zero_variance": True,
            "max_resample_rounds": 29,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # LUSPO -- "Length-Unbiased Sequence Policy Optimization: Revealing and Controlling Response Length Variation in
    # RLVR" (arXiv:2602.05261): GSPO with each sequence's loss scaled by its length. That scaling is an
    # aggregation: GSPO's token-form loss (equal to the sequence loss on every token) summed over each sequence's
    # tokens and averaged over sequences, i.e. sum_i |o_i| L_i / G, which is TRL's loss_type="luspo".
    "luspo": {
        "algorithm": {
            "advantage": "grpo",
            "whiten_advantages": False,
            "policy_loss": "gspo",
            "loss_agg_mode": "seq-mean-token-sum",
            # Sec. 5.1 (as quoted by TRL's paper index): epsilon = 2e-3, epsilon_high = 2.5e-3.
            "clip_low": 2e-3,
            "clip_high": 2.5e-3,
            "dual_clip": None,
            # GSPO's objective, no KL term.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # Not checked in the LUSPO paper: GSPO's four minibatches (the method it modifies).
            "ppo_epochs": 1,
            "minibatches": 4,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
    # BNPO -- Xiao, Zhang, Cao 2025, "BNPO: Beta Normalization Policy Optimization" (arXiv:2506.02864), with the
    # authors' script changyi7231/BNPO recipe/bnpo/run.sh.
    "bnpo": {
        "algorithm": {
            # adv_estimator=bnpo: (r - p) / Beta density at p, (alpha, beta) fitted to the batch (rewards in [0, 1]).
            "advantage": "bnpo",
            "whiten_advantages": False,
            # The vanilla PPO clipped loss.
            "policy_loss": "ppo_clip",
            # loss_agg_mode="seq-mean-token-sum".
            "loss_agg_mode": "seq-mean-token-sum",
            # clip_ratio_low=0.2, clip_ratio_high=0.28.
            "clip_low": 0.2,
            "clip_high": 0.28,
            # The script's clip_ratio_c=10 never binds with one on-policy update (below), so it is left off.
            "dual_clip": None,
            # use_kl_loss=False, use_kl_in_reward=False.
            "kl_coef": 0.0,
            "kl_estimator": "k3",
            "kl_in_reward": False,
            "entropy_coef": 0.0,
            # ppo_epochs=1 and ppo_mini_batch_size = train_batch_size = 32: one on-policy update per batch.
            "ppo_epochs": 1,
            "minibatches": 1,
            "filter_zero_variance": False,
            "max_resample_rounds": 0,
            "overlong_buffer": 0,
            "overlong_penalty": 1.0,
            "mask_truncated": False,
        },
    },
}


def preset_names() -> list[str]:
    """Sorted names of the known presets."""
    return sorted(PRESETS)


def apply_preset(name: str) -> dict[str, dict[str, Any]]:
    """The nested override dict of preset `name` (a fresh copy: `{"algorithm": {...}, ...}`).

    Raises `ConfigError` naming every known preset when `name` is unknown.
    """
    if not isinstance(name, str) or name not in PRESETS:
        known = ", ".join(preset_names())
        match = difflib.get_close_matches(str(name), preset_names(), n=1, cutoff=0.6)
        hint = f" (did you mean '{match[0]}'?)" if match else ""
        raise ConfigError(f"unknown algorithm preset {name!r} in 'algorithm.name'{hint}; known presets: {known}")
    return copy.deepcopy(PRESETS[name])
