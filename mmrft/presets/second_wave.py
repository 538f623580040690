"""The second wave of presets: CISPO, SAPO, GMPO, GPG, Clip-Cov, KL-Cov, LUSPO and BNPO, each knob with its source
(see `mmrft.presets` for the rules every preset follows)."""

from __future__ import annotations

from typing import Any

SECOND_WAVE: dict[str, dict[str, dict[str, Any]]] = {
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
