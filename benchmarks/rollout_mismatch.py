"""Does the rollout correction move an off-policy update toward the on-policy one? Measured on the tiny model.

    python benchmarks/rollout_mismatch.py                  # about ten minutes on 2 CPU cores (SFT included)
    python benchmarks/rollout_mismatch.py --sft RUN/final  # from an SFT checkpoint of the demo's tiny model
    python benchmarks/rollout_mismatch.py --quick          # the path only, numbers meaningless

The trainer policy pi is a GRPO checkpoint of the demo's tiny Qwen2-VL (SFT on labelled counting scenes, then
`--stale` GRPO updates). Completions are drawn from a sampler mu that is *not* pi, as happens in real runs:

* `bf16`: pi's own weights in bfloat16 (the precision/kernel gap of a bf16 inference engine against an fp32
  trainer);
* `stale`: the policy `--stale` updates before pi (its SFT start), as in one-step-off-policy or asynchronous RL.

For every sampler and every registered correction, the GRPO policy gradient at pi is computed from the same
completions (G per prompt on the same prompts, count checker rewards, `grpo` advantages, token-mean), the loss
multiplied by the correction's weights of `log pi - log mu` (`mmrft.algorithms.correction`). The reference is the
on-policy gradient: completions drawn from pi itself, averaged over `--ref-draws` independent draws. Reported per
(sampler, correction), averaged over `--draws` draws of mu: the cosine to the on-policy gradient and the relative
error ||g - g*|| / ||g*||, the loss value, the measured mismatch (k3 KL(mu || pi)) and the share of tokens masked.
The row `on_policy` (fresh draws from pi, uncorrected) is the noise floor: what an exactly on-policy estimate of the
same size reaches. Nothing here is tuned: every correction runs with its documented defaults.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "rollout_mismatch.json"


def flat_grad(loss, params):
    import torch

    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def draw(engine, prompts, samples, scorer, n, max_new, seed):
    """One draw of `n` completions per prompt from the engine's model: (sequences, mask, advantages, sampler
    log-probs, mean reward)."""
    import torch

    from mmrft.algorithms import grpo
    from mmrft.rollout.engine import SamplingParams
    from mmrft.train.forward import build_sequences

    torch.manual_seed(seed)
    rollout = engine.generate(prompts, SamplingParams(n=n, max_new_tokens=max_new, temperature=1.0))
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, n, engine.suppress)
    rewards = scorer.score(rollout.texts, [s for s in samples for _ in range(n)]).totals
    advantages = grpo(rewards, rollout.group_ids)
    return seqs, rollout.completion_mask, advantages, rollout.logprobs, float(rewards.mean())


def policy_gradients(model, params, seqs, mask, advantages, sampler_logp, corrections):
    """Per correction name (None: no correction), the gradient and loss of the on-policy-form GRPO surrogate at
    `model` on these completions, weighted by the correction; plus the correction metrics."""
    import torch

    from mmrft.algorithms import aggregate
    from mmrft.algorithms.correction import correction_metrics, sampler_log_ratio
    from mmrft.algorithms.registry import ROLLOUT_CORRECTIONS
    from mmrft.train.forward import completion_logprobs

    logp, _ = completion_logprobs(model, seqs, 1.0)
    surrogate = -advantages.unsqueeze(1) * torch.exp(logp - logp.detach())  # value -A, gradient -A grad log pi
    out = {}
    for name in corrections:
        log_ratio = sampler_log_ratio(logp.detach(), sampler_logp, mask)
        w = torch.ones_like(mask) if name is None else ROLLOUT_CORRECTIONS[name](log_ratio, mask)
        metrics = correction_metrics(log_ratio, w, mask)
        loss = aggregate(surrogate * w, mask, "token-mean")
        out[name] = (flat_grad(loss, params), float(loss.detach()), metrics)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sft", default=None, help="SFT checkpoint of the tiny model (default: train one here)")
    ap.add_argument("--stale", type=int, default=8, help="GRPO updates between the stale sampler and pi")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--draws", type=int, default=3, help="draws of each sampler (averaged)")
    ap.add_argument("--ref-draws", type=int, default=6, help="on-policy draws averaged into the reference")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.draws, args.ref_draws, args.stale = 4, 1, 1, 1

    import torch

    from mmrft import atomic
    from mmrft.algorithms.registry import ROLLOUT_CORRECTIONS
    from mmrft.config import ModelConfig, load_config
    from mmrft.data.collate import encode_prompts
    from mmrft.data.sources import load_samples
    from mmrft.data.synthetic import tokenizer_corpus, write_dataset
    from mmrft.demo import SEEDS, config_path
    from mmrft.models.load import load_policy
    from mmrft.models.tiny import make_tiny_model
    from mmrft.rewards.scoring import Scorer
    from mmrft.rollout.hf import HFRolloutEngine
    from mmrft.train.rl import train_rl
    from mmrft.train.sft import train_sft

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(args.workdir or ROOT / "benchmarks" / "results" / "rollout_mismatch" / f"seed{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sft = args.sft
    if sft is None:
        model_dir = make_tiny_model(work / "model", corpus=tokenizer_corpus(), seed=args.seed, overwrite=True)
        labelled = write_dataset("count", 32 if args.quick else 256, work / "data" / "labelled",
                                 seed=SEEDS["labelled"], difficulty=0)
        sft = train_sft(load_config(config_path("demo_sft.yaml"), [
            f"model.path={model_dir}", f"data.train={labelled}", f"trainer.output_dir={work / 'sft'}",
            "trainer.overwrite=true", f"trainer.seed={args.seed}", *(["sft.steps=5"] if args.quick else [])
        ]))["checkpoint"]
    rl_data = write_dataset("count", 256, work / "data" / "rl", seed=SEEDS["rl"], difficulty=0)
    pi_ckpt = train_rl(load_config(config_path("demo_grpo.yaml"), [
        f"model.path={sft}", f"data.train={rl_data}", f"trainer.output_dir={work / 'grpo'}", "trainer.overwrite=true",
        f"trainer.steps={args.stale}", "trainer.eval_every=0", "trainer.progress=false", f"trainer.seed={args.seed}",
        ]))["checkpoint"]
    t_models = time.time()

    cfg = load_config(config_path("demo_grpo.yaml"), [f"model.path={pi_ckpt}"])
    pi, processor = load_policy(ModelConfig(path=str(pi_ckpt)))
    stale, _ = load_policy(ModelConfig(path=str(sft)))
    samplers = {"bf16": copy.deepcopy(pi).to(torch.bfloat16), "stale": stale}
    params = [p for p in pi.parameters() if p.requires_grad]
    scorer = Scorer.from_config(cfg)
    prompt_path = write_dataset("count", args.prompts, work / "data" / "prompts", seed=31, difficulty=0)
    samples = load_samples(prompt_path)
    prompts = encode_prompts(processor, samples, cfg.data.prompt_format)
    g, max_new = args.group_size, cfg.rollout.max_new_tokens
    corrections = [None, *ROLLOUT_CORRECTIONS]  # None: uncorrected; "none" is the same, listed once
    corrections.remove("none")

    def engine(model):
        return HFRolloutEngine(model, processor, keep_logprobs=True)

    # the on-policy reference: draws from pi itself, gradients averaged
    ref_grads, ref_rewards = [], []
    for k in range(args.ref_draws):
        seqs, mask, adv, lp, reward = draw(engine(pi), prompts, samples, scorer, g, max_new, seed=1000 + k)
        ref_grads.append(policy_gradients(pi, params, seqs, mask, adv, lp, [None])[None][0])
        ref_rewards.append(reward)
    reference = torch.stack(ref_grads).mean(0)

    def agreement(grad):
        cos = float(torch.nn.functional.cosine_similarity(grad, reference, dim=0))
        return cos, float((grad - reference).norm() / reference.norm())

    rows: dict[str, dict] = {}

    def add(key, grad, loss, metrics):
        cos, rel = agreement(grad)
        row = rows.setdefault(key, {"cosine": [], "rel_error": [], "loss": [], "mismatch_kl": [], "is_masked": []})
        row["cosine"].append(cos)
        row["rel_error"].append(rel)
        row["loss"].append(loss)
        for k in ("mismatch_kl", "is_masked"):
            if k in metrics:
                row[k].append(metrics[k])

    for k in range(args.draws):  # the noise floor: fresh on-policy draws, never in the reference
        seqs, mask, adv, lp, _ = draw(engine(pi), prompts, samples, scorer, g, max_new, seed=2000 + k)
        add("on_policy", *policy_gradients(pi, params, seqs, mask, adv, lp, [None])[None])
    print(f"reference: {args.ref_draws} on-policy draws, mean reward {sum(ref_rewards) / len(ref_rewards):.3f}",
          flush=True)
    for name, mu in samplers.items():
        print(f"sampler {name}", flush=True)
        for k in range(args.draws):
            seqs, mask, adv, lp, _ = draw(engine(mu), prompts, samples, scorer, g, max_new, seed=3000 + k)
            for corr, (grad, loss, metrics) in policy_gradients(pi, params, seqs, mask, adv, lp,
                                                                corrections).items():
                add(f"{name}/{corr or 'none'}", grad, loss, metrics)
    scorer.close()

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    table = {key: {k: mean(v) for k, v in row.items()} | {"draws": len(row["cosine"])} for key, row in rows.items()}
    result = {
        "benchmark": "rollout_mismatch", "quick": args.quick, "seed": args.seed,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "trainer_policy": str(pi_ckpt), "stale_sampler": str(sft), "stale_updates": args.stale,
        "prompts": args.prompts, "group_size": g, "draws": args.draws, "reference_draws": args.ref_draws,
        "on_policy_reward": mean(ref_rewards), "rows": table,
        "minutes": {"models": (t_models - t0) / 60, "total": (time.time() - t0) / 60},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(result, indent=2))
    print(f"{'sampler/correction':<24} {'cosine':>7} {'rel.err':>8} {'loss':>8} {'KL(mu||pi)':>11} {'masked':>7}")
    for key, r in table.items():
        kl = f"{r['mismatch_kl']:.2e}" if r["mismatch_kl"] is not None else "-"
        masked = f"{100 * r['is_masked']:.1f}%" if r["is_masked"] is not None else "-"
        print(f"{key:<24} {r['cosine']:>7.3f} {r['rel_error']:>8.3f} {r['loss']:>8.4f} {kl:>11} {masked:>7}")
    print(f"wrote {out} ({result['minutes']['total']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
