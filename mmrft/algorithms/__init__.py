"""Pure tensor math for GRPO-family reinforcement fine-tuning.

Advantage estimators (GDPO and BNPO's reward normalisations in `multi_reward`), policy/value
losses, loss aggregation, KL estimators, rollout corrections, entropy and DAPO-style
filtering. No I/O, models or config objects live here; the trainer selects pieces by name
through the registries (`ADVANTAGE_ESTIMATORS`, `POLICY_LOSSES`, `AGGREGATIONS`,
`KL_ESTIMATORS`, `ROLLOUT_CORRECTIONS`), each a `mmrft.registry.Registry`.
"""

from mmrft.algorithms.registry import (
    ADVANTAGE_ESTIMATORS,
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    ROLLOUT_CORRECTIONS,
    options_for,
    register_advantage_estimator,
    register_aggregation,
    register_policy_loss,
    register_rollout_correction,
)
from mmrft.algorithms.advantages import (
    broadcast_to_tokens,
    dr_grpo,
    gae,
    group_stats,
    masked_whiten,
    outcome_token_rewards,
    grpo,
    reinforce_pp,
    reinforce_pp_baseline,
    rloo,
)
from mmrft.algorithms.losses import (
    aggregate,
    aggregation_denominators,
    gspo,
    masked_mean,
    ppo_clip,
    value_loss,
)
from mmrft.algorithms.policy_losses import cispo, gmpo, gpg, sapo, vespo
from mmrft.algorithms.entropy_losses import centered_covariance, clip_cov, kl_cov
from mmrft.algorithms.multi_reward import beta_log_pdf, bnpo, bnpo_decomposed, gdpo
from mmrft.algorithms.correction import correction_metrics, sampler_log_ratio
from mmrft.algorithms.kl import entropy_from_logits, k1, k2, k3, kl_penalty
from mmrft.algorithms.filtering import (
    GroupFilterStats,
    filter_groups,
    overlong_filter_mask,
    overlong_penalty,
    zero_variance_group_mask,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "POLICY_LOSSES",
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "ROLLOUT_CORRECTIONS",
    "register_rollout_correction",
    "sampler_log_ratio",
    "correction_metrics",
    "register_advantage_estimator",
    "register_policy_loss",
    "register_aggregation",
    "options_for",
    "group_stats",
    "grpo",
    "dr_grpo",
    "rloo",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "gae",
    "outcome_token_rewards",
    "masked_whiten",
    "broadcast_to_tokens",
    "masked_mean",
    "aggregation_denominators",
    "aggregate",
    "ppo_clip",
    "gspo",
    "value_loss",
    "cispo",
    "sapo",
    "gmpo",
    "gpg",
    "vespo",
    "clip_cov",
    "kl_cov",
    "centered_covariance",
    "gdpo",
    "bnpo",
    "bnpo_decomposed",
    "beta_log_pdf",
    "k1",
    "k2",
    "k3",
    "kl_penalty",
    "entropy_from_logits",
    "zero_variance_group_mask",
    "overlong_penalty",
    "overlong_filter_mask",
    "GroupFilterStats",
    "filter_groups",
]
