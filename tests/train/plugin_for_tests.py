"""A user's own advantage estimator, registered on import (named in `imports:` of a config)."""

from mmrft.algorithms import ADVANTAGE_ESTIMATORS, register_advantage_estimator

if "centred_times_two" not in ADVANTAGE_ESTIMATORS:

    @register_advantage_estimator("centred_times_two")
    def centred_times_two(rewards, group_ids, mask):
        out = rewards.clone()
        for g in group_ids.unique():
            sel = group_ids == g
            out[sel] = 2 * (rewards[sel] - rewards[sel].mean())
        return out
