"""`trainer.save_best`: RUN/best holds the model of the best evaluation of the first held-out split (a tie keeps the
earlier one), best.json says which; the record survives a resume, so the resumed run keeps the same best."""

import json
import shutil

import torch
from safetensors.torch import load_file

from mmrft.config import load_config
from mmrft.eval.runner import EvalResult
from mmrft.train import run as run_module
from mmrft.train.best import BestEvaluation, read_best
from mmrft.train.rl import train_rl


def test_the_best_is_the_first_highest_accuracy():
    best = BestEvaluation()
    assert not best.improves(None)  # a rank that did not evaluate
    kept = []
    for step, accuracy in enumerate([0.0, 0.25, 0.5, 0.5, 0.25, 0.75, 0.75]):
        if best.improves(accuracy):
            best.record(step, accuracy)
            kept.append(step)
    assert kept == [0, 1, 2, 5] and (best.step, best.accuracy) == (5, 0.75)
    again = BestEvaluation()
    again.load_state_dict(json.loads(json.dumps(best.state_dict())))
    assert again == best
    empty = BestEvaluation()
    empty.load_state_dict(BestEvaluation().state_dict())  # nothing evaluated yet: JSON has no -inf
    assert empty.improves(0.0) and BestEvaluation().state_dict() == {"step": None, "accuracy": None}


def _scripted_evaluations(monkeypatch, accuracies):
    """Held-out evaluations that score `accuracies` in turn (the tiny random model scores 0 everywhere)."""
    left = list(accuracies)

    def evaluate_held_out(cfg, model, processor, samples, scorer, engine):
        a = left.pop(0)
        return EvalResult(per_task={"count": {"accuracy": a, "reward": a, "n": len(samples)}})

    monkeypatch.setattr(run_module, "evaluate_held_out", evaluate_held_out)
    return left


def _cfg(tmp_path, tiny_model_dir, count_data, *extra):
    return load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={count_data['train']}", f"data.eval={count_data['test']}",
        "data.eval_limit=2", f"trainer.output_dir={tmp_path / 'run'}", "trainer.steps=4", "trainer.eval_every=1",
        "trainer.save_best=true", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=5", "trainer.lr=1e-3",
        "trainer.progress=false", "tracking.tensorboard=false", "rollout.group_size=2", "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=4", *extra])


def _weights(path):
    return load_file(str(next(path.glob("*.safetensors"))))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_run_keeps_the_model_of_its_best_evaluation_across_a_resume(tmp_path, tiny_model_dir, count_data,
                                                                         monkeypatch):
    run = tmp_path / "run"
    left = _scripted_evaluations(monkeypatch, [0.25, 0.5, 0.75, 0.5, 0.75])  # steps 0-4; step 4 ties step 2
    res = train_rl(_cfg(tmp_path, tiny_model_dir, count_data))
    assert left == []
    assert res["best"] == {"step": 2, "accuracy": 0.75, "checkpoint": str(run / "best")}
    best = _weights(run / "best")
    assert _same(best, _weights(run / "checkpoint-000002" / "policy"))  # the policy as it was at step 2
    assert not _same(best, _weights(run / "final"))
    assert (run / "best" / "processor_config.json").is_file()  # loads with from_pretrained, as final does
    assert json.loads((run / "checkpoint-000002" / "state.json").read_text())["best"] == {"step": 2,
                                                                                          "accuracy": 0.75}

    # resumed from step 2: steps 3 and 4 evaluate again. Without the record, step 3's 0.5 would be a new best
    for name in ("checkpoint-000004", "final"):
        shutil.rmtree(run / name)
    _scripted_evaluations(monkeypatch, [0.5, 0.75])
    res = train_rl(_cfg(tmp_path, tiny_model_dir, count_data, "trainer.resume=auto"))
    assert res["best"]["step"] == 2 and read_best(run)["accuracy"] == 0.75
    assert _same(_weights(run / "best"), best)


def test_without_save_best_no_best_model(tmp_path, tiny_model_dir, count_data, monkeypatch):
    _scripted_evaluations(monkeypatch, [0.25, 0.5])
    res = train_rl(_cfg(tmp_path, tiny_model_dir, count_data, "trainer.save_best=false", "trainer.steps=1",
                        "trainer.checkpoint_every=0"))
    assert res["best"] is None and not (tmp_path / "run" / "best").exists()
