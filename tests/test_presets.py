"""Algorithm presets: the layer between the dataclass defaults and the user's YAML / command line."""

from dataclasses import asdict, fields

import pytest

from mmrft.algorithms import ADVANTAGE_ESTIMATORS, AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from mmrft.config import AlgorithmConfig, Config, config_to_yaml, load_config
from mmrft.errors import ConfigError
from mmrft.presets import PRESET_KNOBS, PRESETS, apply_preset

# Written out by hand from the papers (see mmrft/presets/ for the sources), not read from PRESETS.
EXPECTED = {
    "grpo": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="ppo_clip", loss_agg_mode="seq-mean-token-mean",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=0.04, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=1, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "dr_grpo": dict(
        advantage="dr_grpo", whiten_advantages=False, policy_loss="ppo_clip", loss_agg_mode="seq-mean-token-sum-norm",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=1, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "dapo": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="ppo_clip", loss_agg_mode="token-mean",
        clip_low=0.2, clip_high=0.28, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=16, filter_zero_variance=True,
        max_resample_rounds=3, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "gspo": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="gspo", loss_agg_mode="seq-mean-token-mean",
        clip_low=3e-4, clip_high=4e-4, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=4, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "rloo": dict(
        advantage="rloo", whiten_advantages=False, policy_loss="ppo_clip", loss_agg_mode="seq-mean-token-sum",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=1, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "reinforce_pp": dict(
        advantage="reinforce_pp_baseline", whiten_advantages=False, policy_loss="ppo_clip", loss_agg_mode="token-mean",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=1e-3, kl_estimator="k2", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=1, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "ppo": dict(
        advantage="gae", whiten_advantages=True, policy_loss="ppo_clip", loss_agg_mode="token-mean",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=0.02, kl_estimator="k3", kl_in_reward=True, entropy_coef=0.0,
        ppo_epochs=4, minibatches=4, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "cispo": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="cispo", loss_agg_mode="token-mean",
        clip_low=1.0, clip_high=4.0, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=4, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "sapo": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="sapo", loss_agg_mode="seq-mean-token-mean",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=8, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "gmpo": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="gmpo", loss_agg_mode="seq-mean-token-mean",
        clip_low=0.4, clip_high=0.4, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=8, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "gpg": dict(
        advantage="dr_grpo", whiten_advantages=False, policy_loss="gpg", loss_agg_mode="token-mean",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=1, filter_zero_variance=True,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "clip_cov": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="clip_cov", loss_agg_mode="token-mean",
        clip_low=1.0, clip_high=1.0, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=8, filter_zero_variance=True,
        max_resample_rounds=29, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "kl_cov": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="kl_cov", loss_agg_mode="token-mean",
        clip_low=0.2, clip_high=0.2, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=8, filter_zero_variance=True,
        max_resample_rounds=29, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "luspo": dict(
        advantage="grpo", whiten_advantages=False, policy_loss="gspo", loss_agg_mode="seq-mean-token-sum",
        clip_low=2e-3, clip_high=2.5e-3, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False,
        entropy_coef=0.0, ppo_epochs=1, minibatches=4, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
    "bnpo": dict(
        advantage="bnpo", whiten_advantages=False, policy_loss="ppo_clip", loss_agg_mode="seq-mean-token-sum",
        clip_low=0.2, clip_high=0.28, dual_clip=None, kl_coef=0.0, kl_estimator="k3", kl_in_reward=False, entropy_coef=0.0,
        ppo_epochs=1, minibatches=1, filter_zero_variance=False,
        max_resample_rounds=0, overlong_buffer=0, overlong_penalty=1.0, mask_truncated=False,
    ),
}
# `gae` is not an outcome estimator (per-token, needs the critic's values): registered with needs_critic.
CRITIC_ESTIMATOR = {"ppo": "gae"}


def knobs(cfg: Config) -> dict:
    return {k: getattr(cfg.algorithm, k) for k in PRESET_KNOBS}


def _equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, float):
            assert isinstance(got[k], float) and got[k] == pytest.approx(v), (k, got[k], v)
        else:
            assert got[k] == v and type(got[k]) is type(v), (k, got[k], v)


def write(tmp_path, text: str):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    return f


def test_every_preset_has_a_hand_written_expectation():
    assert set(PRESETS) == set(EXPECTED)


def test_presets_set_every_method_knob_and_nothing_else():
    algorithm_fields = {f.name for f in fields(AlgorithmConfig)}
    # how the update is split into forward passes is not part of a method (the loss is the same either way); the
    # option dicts are the user's additions to a chosen estimator or loss
    assert set(PRESET_KNOBS) == algorithm_fields - {"name", "micro_batch_size", "length_sorted_micro_batches",
                                                    "advantage_options", "policy_loss_options"}
    for name, preset in PRESETS.items():
        assert set(preset["algorithm"]) == set(PRESET_KNOBS), name
        # Sections other than `algorithm` are allowed only where a method prescribes them; each key must exist
        # and must not be dict-valued (OmegaConf merges dicts key-wise, so the user could not remove a key).
        defaults = asdict(Config())
        for section, values in preset.items():
            assert section in defaults, (name, section)
            for key, value in values.items():
                assert key in defaults[section], (name, f"{section}.{key}")
                assert not isinstance(value, dict) and not isinstance(defaults[section][key], dict), (name, key)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_resolves_to_published_knobs(name):
    cfg = load_config(None, [f"algorithm.name={name}"])
    assert cfg.algorithm.name == name
    _equal(knobs(cfg), EXPECTED[name])
    # Knobs outside the presets keep the dataclass defaults.
    assert cfg.algorithm.micro_batch_size == AlgorithmConfig().micro_batch_size
    assert cfg.rollout == Config().rollout and cfg.rewards == Config().rewards and cfg.trainer == Config().trainer


def test_default_preset_is_grpo():
    cfg = load_config()
    assert cfg.algorithm.name == "grpo"
    _equal(knobs(cfg), EXPECTED["grpo"])


def test_preset_name_from_yaml(tmp_path):
    cfg = load_config(write(tmp_path, "algorithm:\n  name: gspo\n"))
    _equal(knobs(cfg), EXPECTED["gspo"])


def test_yaml_knob_beats_preset(tmp_path):
    cfg = load_config(write(tmp_path, "algorithm:\n  name: dapo\n  clip_high: 0.3\n  filter_zero_variance: false\n"))
    want = dict(EXPECTED["dapo"], clip_high=0.3, filter_zero_variance=False)
    _equal(knobs(cfg), want)


def test_cli_knob_beats_preset_and_yaml(tmp_path):
    f = write(tmp_path, "algorithm:\n  name: grpo\n  kl_coef: 0.1\n")
    cfg = load_config(f, ["algorithm.kl_coef=0.0", "algorithm.dual_clip=3.0"])
    _equal(knobs(cfg), dict(EXPECTED["grpo"], kl_coef=0.0, dual_clip=3.0))


def test_cli_name_switches_every_knob_not_set_explicitly(tmp_path):
    f = write(tmp_path, "algorithm:\n  name: grpo\n  loss_agg_mode: seq-mean-token-sum\n")
    assert knobs(load_config(f))["kl_coef"] == pytest.approx(0.04)
    cfg = load_config(f, ["algorithm.name=dapo"])
    assert cfg.algorithm.name == "dapo"
    _equal(knobs(cfg), dict(EXPECTED["dapo"], loss_agg_mode="seq-mean-token-sum"))
    # The last name on the command line wins, and the command line wins over the file.
    cfg = load_config(f, ["algorithm.name=dapo", "algorithm.name=rloo"])
    _equal(knobs(cfg), dict(EXPECTED["rloo"], loss_agg_mode="seq-mean-token-sum"))


def test_switching_presets_leaves_no_residue():
    # dapo sets filter_zero_variance / minibatches that grpo does not share; switching back must undo them.
    a = load_config(None, ["algorithm.name=dapo", "algorithm.name=grpo"])
    _equal(knobs(a), EXPECTED["grpo"])


def test_unknown_preset_names_the_known_ones(tmp_path):
    for call in (
        lambda: load_config(None, ["algorithm.name=dapoo"]),
        lambda: load_config(write(tmp_path, "algorithm:\n  name: vanilla_pg\n")),
        lambda: apply_preset("vanilla_pg"),
    ):
        with pytest.raises(ConfigError) as e:
            call()
        msg = str(e.value)
        assert "unknown algorithm preset" in msg and "algorithm.name" in msg
        for name in EXPECTED:
            assert name in msg
    with pytest.raises(ConfigError, match=r"did you mean 'dapo'\?"):
        load_config(None, ["algorithm.name=dapoo"])


def test_user_errors_still_name_the_key_with_a_preset():
    with pytest.raises(ConfigError, match=r"unknown key 'algorithm.clip_hi'"):
        load_config(None, ["algorithm.name=dapo", "algorithm.clip_hi=0.3"])
    with pytest.raises(ConfigError, match=r"bad value for 'algorithm.minibatches'"):
        load_config(None, ["algorithm.name=gspo", "algorithm.minibatches=four"])


def test_apply_preset_returns_a_copy():
    d = apply_preset("dapo")
    d["algorithm"]["clip_high"] = 9.0
    assert PRESETS["dapo"]["algorithm"]["clip_high"] == pytest.approx(0.28)
    assert load_config(None, ["algorithm.name=dapo"]).algorithm.clip_high == pytest.approx(0.28)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_names_exist_in_registries(name):
    algo = PRESETS[name]["algorithm"]
    if name in CRITIC_ESTIMATOR:
        assert algo["advantage"] == CRITIC_ESTIMATOR[name]
    assert algo["advantage"] in ADVANTAGE_ESTIMATORS
    assert bool(ADVANTAGE_ESTIMATORS.info(algo["advantage"]).get("needs_critic")) == (name in CRITIC_ESTIMATOR)
    assert algo["policy_loss"] in POLICY_LOSSES
    assert algo["loss_agg_mode"] in AGGREGATIONS
    assert algo["kl_estimator"] in KL_ESTIMATORS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_round_trip_through_config_to_yaml(tmp_path, name):
    f = write(tmp_path, f"algorithm:\n  name: {name}\n  entropy_coef: 0.01\ntrainer:\n  steps: 7\n")
    cfg = load_config(f, ["algorithm.clip_high=0.5", "rollout.group_size=4"])
    saved = tmp_path / "resolved.yaml"
    saved.write_text(config_to_yaml(cfg))
    assert load_config(saved) == cfg
    # Also when the saved knobs differ from the preset's (every knob is explicit in a resolved config).
    assert load_config(saved).algorithm.clip_high == pytest.approx(0.5)


def test_ppo_preset_sets_the_critic_from_lm_human_preferences():
    cfg = load_config(None, ["algorithm.name=ppo"])
    assert (cfg.critic.gamma, cfg.critic.lam, cfg.critic.value_clip) == (1.0, 0.95, 0.2)
    assert cfg.critic.model_path is None and cfg.critic.lr is None
    # a user's critic setting wins over the preset
    assert load_config(None, ["algorithm.name=ppo", "critic.lam=1.0"]).critic.lam == 1.0
