"""The first wave of presets: GRPO, Dr.GRPO, DAPO, GSPO, RLOO, REINFORCE++ and PPO, each knob with its source (see
`mmrft.presets` for the rules every preset follows)."""

from __future__ import annotations

from typing import Any

FIRST_WAVE: dict[str, dict[str, dict[str, Any]]] = {
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
}
