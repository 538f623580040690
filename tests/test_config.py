import pytest

from mmrft.config import Config, config_to_yaml, load_config
from mmrft.errors import ConfigError


def test_defaults_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("trainer:\n  lr: 1e-4\n  steps: 7\nrewards:\n  weights: {task: 1.0, format: 0.5}\n")
    cfg = load_config(f, ["trainer.steps=9", "model.lora.enabled=true", "rollout.temperature=0.7"])
    assert isinstance(cfg, Config)
    assert cfg.trainer.lr == pytest.approx(1e-4)
    assert cfg.trainer.steps == 9  # the command line wins over the file
    assert cfg.model.lora.enabled is True and cfg.model.lora.r == 16
    assert cfg.rollout.temperature == pytest.approx(0.7)
    assert cfg.rewards.weights == {"task": 1.0, "format": 0.5}
    again = tmp_path / "resolved.yaml"
    again.write_text(config_to_yaml(cfg))
    assert load_config(again) == cfg


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["trainer.stepz=5"], "unknown key 'trainer.stepz' (did you mean 'trainer.steps'?)"),
        (["rollout.group_size=eight"], "bad value for 'rollout.group_size'"),
        (["model.lora.rank=4"], "unknown key 'model.lora.rank'"),
        (["steps"], "expected key.sub=value"),
    ],
)
def test_override_errors_name_the_key(overrides, expected):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert expected in str(e.value)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("algorithm:\n  kl_coeff: 0.1\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'algorithm.kl_coeff' \(did you mean 'algorithm.kl_coef'\?\)"):
        load_config(typo)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(lst)


def test_wrong_type_in_a_file_names_the_file_and_key(tmp_path):
    f = tmp_path / "wrong.yaml"
    f.write_text("trainer:\n  steps: many\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: bad value for 'trainer.steps'"):
        load_config(f)
    f.write_text("eval:\n  benchmarks:\n    - {name: mathvista, limit: lots}\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: bad value for 'eval.benchmarks\[0\].limit'"):
        load_config(f)


def test_a_dict_written_whole_replaces_the_default(tmp_path):
    """`rewards.weights` defaults to {task: 1.0}; a user's mapping means exactly those rewards (OmegaConf alone
    would merge the two), while a dotted key adds one entry."""
    f = tmp_path / "c.yaml"
    f.write_text("rewards:\n  weights: {format: 1.0}\n")
    assert load_config(f).rewards.weights == {"format": 1.0}
    assert load_config(None, ["rewards.weights={format: 0.5}"]).rewards.weights == {"format": 0.5}
    assert load_config(f, ["rewards.weights.exact=2.0"]).rewards.weights == {"format": 1.0, "exact": 2.0}
    assert load_config(None, ["rewards.weights.format=0.5"]).rewards.weights == {"task": 1.0, "format": 0.5}
    assert load_config(None).rewards.weights == {"task": 1.0}


def test_one_evaluation_budget():
    from mmrft.config import eval_budget

    assert eval_budget(load_config(None, [])) == (32, 64)  # rollout.max_new_tokens, eval.batch_size
    assert eval_budget(load_config(None, ["rollout.max_new_tokens=100"])) == (100, 64)
    assert eval_budget(load_config(None, ["rollout.max_new_tokens=100", "eval.max_new_tokens=9",
                                          "eval.batch_size=4"])) == (9, 4)


@pytest.mark.parametrize("key,hint", [("algorithm.normalize_std=false", "algorithm.whiten_advantages"),
                                      ("rollout.eval_batch_size=8", "eval.batch_size")])
def test_renamed_keys_say_what_replaced_them(key, hint):
    with pytest.raises(ConfigError, match=f"is gone: use {hint}"):
        load_config(None, [key])
