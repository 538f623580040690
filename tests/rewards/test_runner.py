import os
import time

import pytest

from mmrft.rewards import RewardBatch, RewardRunner, build_reward

U = "tests.rewards.user_rewards:"


def S(i, answer=3):
    return {"id": f"s{i}", "answer": answer, "metadata": {}}


GOOD = "<think>one two three</think><answer>3</answer>"
SPEC = {"format": 0.5, "count": 1.0}
BATCH = [
    (GOOD, 3, 0.5 + 1.0),
    ("There are 3 circles.", 3, 1.0),
    ("<think>I count the circ", 3, 0.0),
    ("<think>x</think><answer>4</answer>", 3, 0.5),
    ("", 0, 0.0),
    ("\\boxed{" * 10_000, 3, 0.0),
]


def _batch():
    comps = [c for c, _, _ in BATCH]
    samples = [S(i, gold) for i, (_, gold, _) in enumerate(BATCH)]
    return comps, samples, [t for _, _, t in BATCH]


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_scores_batch_like_direct_call(workers):
    comps, samples, expected = _batch()
    direct = build_reward(SPEC)
    with RewardRunner(SPEC, timeout_s=2.0, workers=workers) as runner:
        batch = runner.score(comps, samples)
    assert isinstance(batch, RewardBatch)
    assert batch.totals == expected
    assert batch.components["format"] == [direct.fns["format"](c, s) for c, s in zip(comps, samples)]
    assert batch.components["count"] == [direct.fns["count"](c, s) for c, s in zip(comps, samples)]
    assert (batch.timeouts, batch.errors) == (0, [])


def test_user_reward_runs_inside_the_worker():
    with RewardRunner({U + "half": 2.0, U + "pid": 0.0}, workers=1) as runner:
        batch = runner.score(["ok", "nope"], [S(0), S(1)])
        assert batch.components[U + "half"] == [0.5, 0.0]
        assert batch.totals == [1.0, 0.0]
        worker_pid = runner.worker_pids[0]
        assert batch.components[U + "pid"] == [float(worker_pid)] * 2
        assert worker_pid != os.getpid()


@pytest.mark.parametrize("reward,trigger", [("sleepy", "sleep"), ("spin", "spin")])
def test_hanging_reward_times_out_and_the_rest_is_scored(reward, trigger):
    spec = {"count": 1.0, U + reward: 1.0}
    comps = ["3", f"3 {trigger}", "4", "3"]
    with RewardRunner(spec, timeout_s=0.5, workers=1) as runner:
        pid = runner.worker_pids[0]
        t0 = time.perf_counter()
        batch = runner.score(comps, [S(i) for i in range(4)])
        elapsed = time.perf_counter() - t0
        assert runner.worker_pids[0] == pid  # stopped by the in-worker limit, no restart
    assert batch.timeouts == 1
    assert batch.components[U + reward] == [1.0, 0.0, 1.0, 1.0]
    assert batch.components["count"] == [1.0, 1.0, 0.0, 1.0]
    assert batch.totals == [2.0, 1.0, 1.0, 2.0]
    assert batch.errors == []
    assert elapsed < 30.0  # one call hangs for an hour: cut off at 0.5 s (slack for a loaded machine)


def test_hanging_reward_in_process_times_out():
    with RewardRunner(U + "sleepy", timeout_s=0.3, workers=0) as runner:
        t0 = time.perf_counter()
        batch = runner.score(["fine", "sleep"], [S(0), S(1)])
    assert time.perf_counter() - t0 < 30.0  # the reward sleeps for an hour: cut off at 0.3 s, plus slack
    assert batch.totals == [1.0, 0.0]
    assert batch.timeouts == 1


def test_raising_reward_is_logged_with_sample_id():
    with RewardRunner({U + "buggy": 1.0, "count": 1.0}, timeout_s=2.0, workers=1) as runner:
        pid = runner.worker_pids[0]
        batch = runner.score(["3", "boom 3", "3"], [S(0), S(1), S(2)])
        assert runner.worker_pids[0] == pid
    assert batch.totals == [2.0, 1.0, 2.0]
    assert len(batch.errors) == 1
    assert "id='s1'" in batch.errors[0] and "RuntimeError" in batch.errors[0] and "boom" in batch.errors[0]
    assert batch.timeouts == 0


def test_non_numeric_score_and_bad_sample_are_errors():
    with RewardRunner({U + "not_a_number": 1.0, "count": 1.0}, workers=0) as runner:
        batch = runner.score(["3", "3"], [S(0), {"id": "bad", "metadata": {}}])
    assert batch.totals == [1.0, 0.0]
    assert any("id='s0'" in e and "not_a_number" in e for e in batch.errors)
    assert any("id='bad'" in e and "reward=count" in e for e in batch.errors)


def test_watchdog_kills_a_worker_that_ignores_the_timeout():
    with RewardRunner(U + "stubborn", timeout_s=0.2, workers=1, watchdog_s=1.0) as runner:
        runner.score(["warm"], [S(0)])
        pid = runner.worker_pids[0]
        t0 = time.perf_counter()
        batch = runner.score(["a", "stubborn", "b", "c"], [S(i) for i in range(4)])
        assert time.perf_counter() - t0 < 60  # hangs forever unless the watchdog kills it (1 s), plus slack
        assert runner.worker_pids[0] != pid  # restarted
        assert batch.totals == [1.0, 0.0, 1.0, 1.0]
        assert batch.timeouts == 1
        # the new worker keeps serving
        assert runner.score(["d"], [S(9)]).totals == [1.0]


def test_worker_crash_is_recorded_and_recovered():
    with RewardRunner(U + "crash", timeout_s=1.0, workers=1) as runner:
        batch = runner.score(["a", "crash", "b"], [S(0), S(1), S(2)])
        assert batch.totals == [1.0, 0.0, 1.0]
        assert len(batch.errors) == 1 and "id='s1'" in batch.errors[0] and "died" in batch.errors[0]
        assert runner.score(["c"], [S(3)]).totals == [1.0]


def test_heavy_keys_are_dropped_and_unpicklable_samples_recorded():
    media = {"id": "x", "answer": 3, "metadata": {}, "image": lambda: None}  # dropped before sending
    odd = {"id": "odd", "answer": 3, "metadata": {}, "callback": lambda: None}  # cannot be sent
    with RewardRunner("count", workers=1) as runner:
        batch = runner.score(["3", "3", "3"], [media, odd, S(2)])
    assert batch.totals == [1.0, 0.0, 1.0]
    assert len(batch.errors) == 1 and "id='odd'" in batch.errors[0]


def test_close_and_misuse():
    runner = RewardRunner("count", workers=1)
    pid = runner.worker_pids[0]
    assert runner.score([], []).totals == []
    with pytest.raises(ValueError):
        runner.score(["a"], [])
    runner.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped
    runner.close()  # idempotent
    with pytest.raises(RuntimeError):
        runner.score(["3"], [S(0)])


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"spec": "nope"}, KeyError),
        ({"spec": "count", "timeout_s": 0}, ValueError),
        ({"spec": "count", "workers": -1}, ValueError),
        ({"spec": "count", "mp_context": "fork"}, ValueError),
    ],
)
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        RewardRunner(**kwargs)


def test_batch_latency_64_count_completions():
    comps = [f"<think>counting</think><answer>There are {i % 7} circles.</answer>" for i in range(64)]
    samples = [{"id": i, "answer": i % 7, "metadata": {}} for i in range(64)]
    with RewardRunner("count", workers=1) as runner:
        runner.score(comps[:1], samples[:1])  # wait for start-up
        times = []
        for _ in range(10):
            batch = runner.score(comps, samples)
            times.append(batch.elapsed_s)
    assert batch.totals == [1.0] * 64
    times.sort()
    print(f"\n64 x count via worker: median {times[5] * 1e3:.2f} ms, min {times[0] * 1e3:.2f} ms")
    assert times[5] < 0.5


def test_math_in_worker_with_outer_time_limit():
    comps = ["\\boxed{0.5}", "\\boxed{2^{2^{2^{2^{100}}}}}", "The answer is \\frac{1}{2}."]
    samples = [{"id": i, "answer": "\\frac{1}{2}", "metadata": {}} for i in range(3)]
    with RewardRunner("math", timeout_s=1.0, workers=1, watchdog_s=6.0) as runner:
        runner.score(comps[:1], samples[:1])  # start-up and warm-up
        pid = runner.worker_pids[0]
        t0 = time.perf_counter()
        batch = runner.score(comps, samples)
        assert time.perf_counter() - t0 < 30  # the power tower would run for hours without the 1 s limit
        assert runner.worker_pids[0] == pid  # stopped by the per-call limit, not the watchdog
    assert batch.totals == [1.0, 0.0, 1.0]
    assert batch.timeouts == 1
    assert batch.errors == []
