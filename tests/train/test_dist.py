"""Data parallelism: 2 processes (gloo, CPU) make exactly the update one process makes on the same global batch."""

import json

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from mmrft.config import ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.train.dist import DistContext, shard
from tests.train import dist_worker


def test_shard_is_contiguous_and_even():
    assert shard(list(range(8)), DistContext(1, 2, 1)) == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        shard(list(range(5)), DistContext(0, 2, 0))


@pytest.fixture(scope="module")
def fixed_rollout(tiny_model_dir, count_data):
    """4 prompts x 4 sampled completions and made-up rewards, shared by both runs."""
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    samples = load_samples(count_data["train"])[:4]
    engine = HFRolloutEngine(model, proc)
    torch.manual_seed(3)
    rollout = engine.generate(encode_prompts(proc, samples), SamplingParams(n=4, max_new_tokens=8, temperature=1.0))
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0, 0.0, 0.2, 0.9, 0.1, 0.4, 1.0, 0.0, 0.0, 0.0])
    return {"n": 4, "groups": 4, "ids": rollout.completion_ids, "mask": rollout.completion_mask,
            "rewards": rewards, "suppress": list(engine.suppress)}


@pytest.mark.parametrize("estimator,agg,fsdp,lora", [("reinforce_pp", "token-mean", False, False),
                                                      ("grpo", "seq-mean-token-mean", False, False),
                                                      ("grpo", "seq-mean-token-mean", True, False),
                                                      ("grpo", "token-mean", True, True)],
                         ids=["reinforce_pp-replicated", "grpo-replicated", "grpo-fsdp2", "grpo-fsdp2-lora"])
def test_two_gloo_processes_equal_one(tmp_path, tiny_model_dir, count_data, fixed_rollout, estimator, agg, fsdp,
                                      lora):
    """Replicated weights (gradients all-reduced) or FSDP2-sharded ones (reduce-scattered shards; with LoRA the
    frozen base weights are sharded beside the adapters): one update of two processes on their halves of the batch
    equals one process's update on the whole batch."""
    args = (str(tiny_model_dir), str(count_data["train"]), fixed_rollout, estimator, agg, lora)
    dist_worker.single(*args, str(tmp_path / "single.safetensors"))
    mp.spawn(dist_worker.rank_main, args=(2, str(tmp_path / "store"), fsdp, *args, str(tmp_path / "two.safetensors")),
             nprocs=2, join=True)
    one, two = load_file(str(tmp_path / "single.safetensors")), load_file(str(tmp_path / "two.safetensors"))
    start = load_file(str(tmp_path / "single.start.safetensors"))
    assert one.keys() == two.keys() == start.keys()
    assert any(".lora_A." in name for name in one) is lora
    moved = {}
    for name, ref in start.items():
        torch.testing.assert_close(two[name], one[name], atol=2e-6, rtol=1e-5, msg=name)
        moved[name] = float((one[name] - ref).abs().sum())
    assert sum(moved.values()) > 0  # the update did something
    if lora:  # ... to the adapters only
        assert all(v == 0 for k, v in moved.items() if "lora_" not in k)


def _torchrun_train(cfg_path, *overrides, timeout: int = 600):
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    return subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m", "mmrft.cli",
                           "train", str(cfg_path), *overrides], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _write_config(tmp_path, tiny_model_dir, count_data, extra: str = ""):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"algorithm: {{name: dr_grpo}}\nmodel: {{path: {tiny_model_dir}}}\ndata: {{train: {count_data['train']}}}\n"
        f"trainer: {{output_dir: {tmp_path / 'run'}, steps: 2, checkpoint_every: 1, progress: false{extra}}}\n"
        "rollout: {group_size: 2, prompts_per_step: 4, max_new_tokens: 6}\ntracking: {tensorboard: false}\n")
    return cfg


def _train_rows(run):
    import json

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["phase"] == "train"]


def test_torchrun_two_processes_train_end_to_end(tmp_path, tiny_model_dir, count_data):
    """`torchrun --nproc_per_node 2 -m mmrft.cli train`: each rank rolls out its share, rank 0 logs the combined
    step, checkpoints and saves the final model."""
    out = _torchrun_train(_write_config(tmp_path, tiny_model_dir, count_data))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # reported by rank 0 only: the final model on stdout, the two checkpoints in the log
    assert out.stdout.count("checkpoint: ") == 1 and out.stderr.count("checkpoint: ") == 2
    train = _train_rows(tmp_path / "run")
    assert [r["step"] for r in train] == [1, 2]  # one row per step, from rank 0 only
    assert all(r["filter/groups_drawn"] == 4 for r in train)  # 2 groups per rank, summed
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoint-000002" / "manifest.json").is_file()


def test_torchrun_fsdp_trains_evaluates_and_checkpoints(tmp_path, tiny_model_dir, count_data):
    """trainer.fsdp=true: sharded training, sampling with gathered weights (ranks stop generating at different
    tokens), held-out evaluation on rank 0, full-tensor checkpoints and final model (resume: the test below)."""
    from transformers import AutoModelForImageTextToText

    cfg = _write_config(tmp_path, tiny_model_dir, count_data, ", fsdp: true")
    reward = "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}"  # never flat
    out = _torchrun_train(cfg, f"data.eval={count_data['train']}", "data.eval_limit=4", reward, "trainer.lr=1e-3",
                          "trainer.save_best=true")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "run"
    assert [r["step"] for r in _train_rows(run)] == [1, 2]
    final = AutoModelForImageTextToText.from_pretrained(str(run / "final"))
    start = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
    moved = sum(float((a - b).abs().sum()) for a, b in zip(final.state_dict().values(), start.state_dict().values()))
    assert moved > 0  # full tensors, loadable, and trained
    # trainer.save_best: the random model scores the same at every evaluation, so the best is step 0's model,
    # gathered from the shards
    assert json.loads((run / "best" / "best.json").read_text())["step"] == 0
    best = AutoModelForImageTextToText.from_pretrained(str(run / "best"))
    assert all(torch.equal(a, b) for a, b in zip(best.state_dict().values(), start.state_dict().values()))
    opt = torch.load(run / "checkpoint-000002" / "optimizers.pt", weights_only=True)["optimizer"]
    assert any("exp_avg" in v for v in opt["state"].values())  # AdamW moments, gathered by parameter name


@pytest.mark.parametrize("fsdp", [False, True], ids=["replicated", "fsdp2"])
def test_torchrun_dapo_when_one_rank_keeps_no_group(tmp_path, tiny_model_dir, count_data, fsdp):
    """DAPO's filter can leave one rank with nothing to learn from while another has groups: the empty rank still
    takes part in every collective (advantages, denominators, gradient sums; under FSDP every forward and backward
    pass, through stand-in passes), both ranks run the same number of refill rounds (the sampler stays the same on
    every rank), and the step trains on the other rank's groups."""
    cfg = _write_config(tmp_path, tiny_model_dir, count_data, ", fsdp: true" if fsdp else "")
    reward = "rewards.weights={'tests.train.rewards_for_tests:flat_on_rank_1': 1.0}"
    out = _torchrun_train(cfg, "algorithm.name=dapo", "algorithm.minibatches=2", "algorithm.max_resample_rounds=1",
                          reward, "trainer.lr=1e-3", timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "run"
    train = _train_rows(run)
    assert [r["step"] for r in train] == [1, 2]
    for r in train:
        # rank 0 fills its 2 groups in the first round; rank 1 draws 2 more in its extra round and keeps none
        assert r["filter/groups_drawn"] == 2 + 2 + 2 and r["filter/groups_kept"] == 2, r
        assert r["actor/grad_norm"] > 0
    from transformers import AutoModelForImageTextToText

    final = AutoModelForImageTextToText.from_pretrained(str(run / "final"))
    start = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
    assert any(not torch.equal(a, b) for a, b in zip(final.state_dict().values(), start.state_dict().values()))


def test_torchrun_ppo_with_a_sharded_critic_updates_as_replicated(tmp_path, tiny_model_dir, count_data):
    """PPO under FSDP2 shards the critic too. Its first step samples the same completions as the replicated run
    (same weights, same seeds), so both runs' step-1 figures agree: the critic's values, its loss and the norm of
    its summed gradient (a mean instead of the sum would halve it), and the policy's. The critic is saved whole."""
    rows = {}
    for fsdp in (False, True):
        sub = tmp_path / ("fsdp" if fsdp else "replicated")
        sub.mkdir()
        cfg = _write_config(sub, tiny_model_dir, count_data, ", fsdp: true" if fsdp else "")
        out = _torchrun_train(cfg, "algorithm.name=ppo", "trainer.steps=1", "trainer.lr=1e-3",
                              "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        rows[fsdp] = _train_rows(sub / "run")[0]
        assert (sub / "run" / "critic" / "value_head.safetensors").is_file()
    for key in ("critic/values_before", "actor/grad_norm", "actor/loss", "critic/grad_norm", "critic/vf_loss"):
        assert rows[True][key] == pytest.approx(rows[False][key], rel=1e-3, abs=1e-6), key
    assert rows[True]["critic/grad_norm"] > 0


TOOLS = ("imports=[tests.rollout.scripted_env]", "rollout.environment=test_always_zooms",
         "rollout.environment_options={turns: 2, vary: true}", "rollout.max_total_tokens=120")


# In the default suite: the two tool-use runs (replicated and FSDP2), which resume everything the plain runs do and
# more. In the slow job: replicated and fsdp2 (26 s, 31 s: covered by the tool-use runs), fsdp2-lora-kl and fsdp2-ppo
# (27 s, 44 s; LoRA under FSDP2 and the sharded critic's update are checked against one process / the replicated run
# in the default suite) and replicated-dapo (31 s; DAPO's rounds under DDP stay checked by
# test_torchrun_dapo_when_one_rank_keeps_no_group)
@pytest.mark.parametrize("fsdp,lora,algo", [pytest.param(False, False, "dr_grpo", marks=pytest.mark.slow),
                                            pytest.param(True, False, "dr_grpo", marks=pytest.mark.slow),
                                            pytest.param(True, True, "dr_grpo", marks=pytest.mark.slow),
                                            pytest.param(True, False, "ppo", marks=pytest.mark.slow),
                                            pytest.param(False, False, "dapo", marks=pytest.mark.slow),
                                            (True, False, "dr_grpo-tools"),
                                            (False, False, "dr_grpo-tools")],
                         ids=["replicated", "fsdp2", "fsdp2-lora-kl", "fsdp2-ppo", "replicated-dapo", "fsdp2-tools",
                              "replicated-tools"])
def test_torchrun_resume_repeats_the_uninterrupted_run(tmp_path, request, tiny_model_dir, count_data, fsdp, lora,
                                                       algo):
    """Each rank's random state is in the checkpoint (ranks sample different numbers of tokens, so their streams
    differ): a 2-process run resumed from step 1 logs exactly what the uninterrupted run logged, and ends with the
    same weights. With LoRA under FSDP2 the adapter is what is saved and loaded, and the KL's reference is the
    sharded base model with the adapter switched off. With DAPO (half the prompts give flat groups) ranks refill in
    rounds decided together, so the prompt sampler that rank 0 saves is every rank's. With tools, every rollout is
    a multi-turn trajectory with returned images, and the two ranks' trajectories have different turn counts (the
    scripted environment's crops depend on the sample)."""
    import shutil

    from safetensors.torch import load_file as load

    tools = algo.endswith("-tools")
    algo = algo.removesuffix("-tools")
    model_dir = request.getfixturevalue("short_turn_model_dir") if tools else tiny_model_dir
    cfg = _write_config(tmp_path, model_dir, count_data, ", fsdp: true" if fsdp else "")
    reward = "flat_for_even_ids" if algo == "dapo" else "shorter_is_better"
    common = (f"rewards.weights={{task: 1.0, 'tests.train.rewards_for_tests:{reward}': 1.0}}",
              "trainer.lr=1e-3", "trainer.steps=3", "trainer.keep_checkpoints=5")
    if lora:
        common += ("model.lora.enabled=true", "model.lora.r=4", "trainer.lr=1e-2", "algorithm.kl_coef=0.05")
    common += (f"algorithm.name={algo}",) + (TOOLS if tools else ())
    out = _torchrun_train(cfg, *common)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "run"
    volatile = ("time/", "tokens/s")
    full = {r["step"]: {k: v for k, v in r.items() if not k.startswith(volatile)} for r in _train_rows(run)}
    if algo == "dapo":  # refills happened
        assert any(r["filter/rounds"] > 1 for r in full.values()), full
    if tools:  # trajectories with returned images, of different lengths within a step
        assert all(r["trajectory/images"] > 0 for r in full.values()), full
        assert any(0 < r["trajectory/end/answer"] for r in full.values())
    final_file = run / "final" / ("adapter_model.safetensors" if lora else "model.safetensors")
    weights = load(str(final_file))
    assert (run / "checkpoint-000001" / "rng_rank1.safetensors").is_file()
    if lora:
        # zero at step 1 (lora_B starts at 0: policy == reference), then the adapter has moved the policy away
        assert full[1]["actor/kl"] == 0 and full[2]["actor/kl"] > 0 and full[3]["actor/kl"] > 0
        assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)
    for extra in ("checkpoint-000002", "checkpoint-000003", "final"):
        shutil.rmtree(run / extra)
    out = _torchrun_train(cfg, *common, "trainer.resume=auto")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    resumed = {r["step"]: {k: v for k, v in r.items() if not k.startswith(volatile)} for r in _train_rows(run)}
    assert sorted(resumed) == [1, 2, 3]
    for step in (2, 3):
        assert resumed[step] == full[step], (step, {k: (full[step].get(k), v) for k, v in resumed[step].items()
                                                    if full[step].get(k) != v})
    again = load(str(final_file))
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)


def test_whitening_with_given_statistics_equals_whitening_with_own():
    """The data-parallel whitening passes all ranks' (count, mean, var) into the same masked_whiten; with one
    rank's statistics it must reproduce masked_whiten exactly in value."""
    from mmrft.algorithms import masked_whiten
    from mmrft.train.dist import SINGLE, global_masked_whiten

    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, 7.0, -50.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    torch.testing.assert_close(global_masked_whiten(x, mask, SINGLE), masked_whiten(x, mask))
    assert masked_whiten(x, mask, stats=(4, 4.0, 5.0), eps=0.0)[0, 0].item() == pytest.approx(-3 / 5 ** 0.5)
    assert torch.equal(global_masked_whiten(x, torch.zeros_like(mask), SINGLE), torch.zeros_like(x))


def test_check_fsdp_refuses_what_it_does_not_cover():
    from mmrft.config import load_config
    from mmrft.errors import ConfigError
    from mmrft.train.fsdp import check_fsdp

    check_fsdp(load_config(None, ["model.lora.enabled=true", "algorithm.kl_coef=0.05"]))  # LoRA (+ KL) is covered
    check_fsdp(load_config(None, ["algorithm.name=dapo"]))  # and DAPO's refills
    check_fsdp(load_config(None, ["algorithm.name=ppo"]))  # and PPO's critic
    check_fsdp(load_config(None, ["rollout.engine=vllm"]))  # and vLLM, at sleep level 1
    for overrides, why in ((["rollout.engine=vllm", "rollout.vllm_sleep_level=2"], "rollout.vllm_sleep_level=2"),):
        with pytest.raises(ConfigError, match=f"trainer.fsdp=true does not support .*{why}"):
            check_fsdp(load_config(None, overrides))


def test_fsdp_refuses_data_that_runs_different_towers():
    """A text-only sample next to image samples would run the vision tower on some ranks only (unpaired gathers)."""
    from mmrft.data.schema import Sample
    from mmrft.errors import ConfigError
    from mmrft.train.fsdp import check_fsdp_data

    with_image = [Sample(id=f"img-{i}", prompt="<image> How many?", answer="2", images=["a.png"]) for i in range(3)]
    check_fsdp_data(with_image, "data.train (d.jsonl)")
    check_fsdp_data([Sample(id="t", prompt="1+1?", answer="2")], "data.train (d.jsonl)")
    with pytest.raises(ConfigError, match=r"data.train \(d.jsonl\): .* mixes images/video \(e.g. id 'img-0'\), "
                                          r"text only \(e.g. id 'txt'\)"):
        check_fsdp_data(with_image + [Sample(id="txt", prompt="1+1?", answer="2")], "data.train (d.jsonl)")


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_vllm_weight_sync_from_an_fsdp_policy(tmp_path, tiny_model_dir, lora):
    """Under FSDP2 the vLLM engine is handed whole tensors (the policy gathered for the sync, LoRA merged), the same
    names and values as from the unsharded policy."""
    dist_worker.vllm_sync_once(dist_worker.SINGLE, str(tiny_model_dir), lora, str(tmp_path / "one.safetensors"))
    mp.spawn(dist_worker.rank_vllm_sync, args=(2, str(tmp_path / "store"), True, str(tiny_model_dir), lora,
                                               str(tmp_path / "two.safetensors")), nprocs=2, join=True)
    one, two = load_file(str(tmp_path / "one.safetensors")), load_file(str(tmp_path / "two.safetensors"))
    assert one.keys() == two.keys() and not any("lora_" in k or "base_layer" in k for k in one)
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=0, rtol=0, msg=name)
