"""Algorithm presets: `algorithm.name` -> the published default knobs of that method.

`load_config` applies a preset as a layer between the dataclass defaults and the user's settings:

    dataclass defaults  <-  PRESETS[algorithm.name]  <-  YAML file  <-  command-line overrides

so `algorithm.name=dapo` switches every knob the user did not set, and any knob set in the YAML file or on the
command line wins over the preset. The preset name itself is read from the command line first, then the YAML file,
else the default `grpo`.

Every preset spells out the same full set of algorithm knobs (`PRESET_KNOBS`), each with where its number comes
from; the presets are in `first_wave.py` (GRPO to PPO) and `second_wave.py` (CISPO to BNPO). `micro_batch_size` and
`length_sorted_micro_batches` are memory/speed settings, not part of any method, and are never set by a preset; nor
are `advantage_options` / `policy_loss_options`, the user's extra options for the chosen estimator and loss. Batch
shape (`rollout.group_size`, `rollout.prompts_per_step`) and learning rate are compute-budget choices that every
paper sets for its own model and hardware (DeepSeekMath samples 64 completions per prompt, DAPO 16), so no preset
touches them: copying a 7B-32B recipe's batch onto a small multimodal run would be wrong more often than right.
Presets may also set `rollout.*` / `rewards.*` values where a method prescribes them; none needs to yet. Never put a
dict-valued field (e.g. `rewards.weights`) in a preset: a dict the user writes replaces the default whole, so the
preset's entries would silently vanish.

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

from mmrft.presets.first_wave import FIRST_WAVE  # noqa: E402  (after PRESET_KNOBS, which they follow)
from mmrft.presets.second_wave import SECOND_WAVE  # noqa: E402

PRESETS: dict[str, dict[str, dict[str, Any]]] = {**FIRST_WAVE, **SECOND_WAVE}


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
