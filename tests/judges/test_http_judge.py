"""The HTTP judge against real servers over localhost sockets, each in a process of its own (no mocks).

* `transformers serve` serving the tiny judge model (the real judge): every request gets its verdict, images reach
  the model (the server counts the prompt's tokens), and with generation restricted to "yes"/"no" tokens (the
  OpenAI `logit_bias` field) the verdict equals what a plain forward pass of the same model prefers.
* `_stall_server.py`, a small OpenAI-compatible server of this directory that counts the requests it answers at
  once and can be told to stall, to answer 429/500/400, or be killed and restarted: the concurrency limit, time
  limits, retries and recovery.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from mmrft.judges import JUDGE_KINDS, JudgeUnavailable
from mmrft.judges.http import HttpJudge, http_client_module
from mmrft.judges.prompts import build_messages
from tests.judges.conftest import SHORT_TEMPLATE, free_port, make_requests, splitting_bias, yes_no_tokens

HERE = Path(__file__).resolve().parent
SERVE_START_S = 180  # deadline for `transformers serve` to answer /v1/models (about 10 s on 2 idle cores)


def reply_length_verdict(reply_text: str, scale: float = 64.0) -> float:
    """Any reply -> a known number: min(1, len(reply) / scale)."""
    return min(1.0, len(reply_text) / scale)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def stop(proc: subprocess.Popen) -> None:
    """Stop a server this test started (its own process group: the server and the model process it spawned)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, 9)  # whatever is left of the group this test created (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(10)


# -- transformers serve: the real judge ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf_server(judge_model_dir, tmp_path_factory):
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("`transformers serve` needs the serving extra: pip install 'transformers[serving]' (fastapi, "
                    "uvicorn, openai)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmrft.judges.serve", str(judge_model_dir), "--host", "127.0.0.1",
             "--port", str(port), "--device", "cpu", "--dtype", "float32"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + SERVE_START_S
    try:
        while True:
            try:
                get_json(url + "/models")
                break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`transformers serve` did not start (exit code {proc.poll()}); its log:\n"
                            f"{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.25)
        yield {"url": url, "model": str(judge_model_dir)}
    finally:
        stop(proc)


def test_real_server_scores_every_request(tf_server, image_files):
    requests = make_requests(6)
    requests[1] = make_requests(2, images=(image_files[0],))[1]
    requests[4] = make_requests(5, images=tuple(image_files))[4]
    with HttpJudge(name="tf", url=tf_server["url"], model=tf_server["model"], template=SHORT_TEMPLATE,
                   verdict="tests.judges.test_http_judge:reply_length_verdict", verdict_options={"scale": 16},
                   max_tokens=4, concurrency=3, timeout_s=60) as judge:
        results = judge.score(requests)
        assert len(results) == 6 and all(r.ok for r in results), results
        assert [r.score for r in results] == [reply_length_verdict(r.raw, 16) for r in results]
        assert all(r.attempts == 1 and r.latency_s > 0 for r in results)
        c = judge.counters()
        assert c["items"] == 6 and c["requests"] == 6 and c["errors"] == {} and 1 <= c["max_in_flight"] <= 3
        # the same judge prompt with the images, posted by hand: the server's prompt holds the image tokens
        body = judge.body(requests[4])
    # the server's greedy replies are the in-process judge's (on text-only prompts: the local judge suppresses media
    # placeholder tokens, which `transformers serve` does not, so replies to prompts with images may differ)
    local = JUDGE_KINDS["local"](name="loc", path=tf_server["model"], template=SHORT_TEMPLATE, max_new_tokens=4,
                                 verdict="tests.judges.test_http_judge:reply_length_verdict", verdict_options={"scale": 16})
    text_only = [i for i, r in enumerate(requests) if not r.images]
    local_raw = [r.raw for r in local.score([requests[i] for i in text_only])]
    local.close()
    assert [results[i].raw.strip() for i in text_only] == [raw.strip() for raw in local_raw]
    usage = post_json(tf_server["url"] + "/chat/completions", body)["usage"]
    without_images = post_json(tf_server["url"] + "/chat/completions",
                               {**body, "messages": [{"role": "user", "content": body["messages"][0]["content"][-1:]}]})
    from mmrft.models.load import load_processor

    processor = load_processor(tf_server["model"])
    from PIL import Image

    grid = processor.image_processor(images=[Image.open(p).convert("RGB") for p in image_files])["image_grid_thw"]
    image_tokens = int(grid.prod(-1).sum()) // 4 + 2 * len(image_files)  # pads + vision start/end per image
    assert usage["prompt_tokens"] - without_images["usage"]["prompt_tokens"] == image_tokens


def test_real_server_forced_verdict_matches_a_forward_pass(tf_server, image_files):
    """The server may only write "yes" or "no" (OpenAI `logit_bias`: +100 on both, +b more on "no"): its verdict
    must be yes exactly where a forward pass of the same model here gives logit(yes) - logit(no) > b, b chosen to
    split the requests (so each verdict depends on that request's prompt, images included)."""
    from transformers import AutoModelForImageTextToText

    from mmrft.models.load import load_processor

    processor = load_processor(tf_server["model"])
    yes, no = yes_no_tokens(processor.tokenizer)
    requests = make_requests(5)
    requests[0] = make_requests(1, images=(image_files[1],))[0]
    requests[3] = make_requests(4, images=tuple(image_files))[3]
    model = AutoModelForImageTextToText.from_pretrained(tf_server["model"]).eval()
    margins = []
    with torch.no_grad():
        for r in requests:
            messages = build_messages(r, SHORT_TEMPLATE)
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            images = [p["image"] for p in messages[-1]["content"] if p["type"] == "image"] or None
            inputs = processor(text=[text], images=images, return_tensors="pt")
            inputs = {k: v for k, v in dict(inputs).items() if isinstance(v, torch.Tensor)}
            logits = model(**inputs).logits[0, -1]
            margins.append(float(logits[yes] - logits[no]))
    bias = splitting_bias(margins)
    expected = [1.0 if m > bias else 0.0 for m in margins]
    assert 0.0 in expected and 1.0 in expected
    judge = JUDGE_KINDS["http"](name="forced", url=tf_server["url"], model=tf_server["model"], template=SHORT_TEMPLATE,
                                max_tokens=1, concurrency=2,
                                extra_body={"logit_bias": {str(yes): 100.0, str(no): 100.0 + bias}})
    results = judge.score(requests)
    judge.close()
    assert all(r.ok and r.raw.strip().lower() in ("yes", "no") for r in results), results
    assert [r.score for r in results] == expected


# -- the stall server: limits, failures, recovery -----------------------------------------------------------------


class StallServer:
    """`_stall_server.py` in a subprocess on a fixed port (so it can be killed and started again there)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "StallServer":
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_stall_server.py"), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), f"stall server did not start: {line!r}"
        return self

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()

    def control(self, **state) -> None:
        post_json(f"http://127.0.0.1:{self.port}/control", state)

    def stats(self) -> dict:
        return get_json(f"http://127.0.0.1:{self.port}/stats")


@pytest.fixture(scope="module")
def stall():
    server = StallServer().start()
    yield server
    if server.proc.poll() is None:
        server.kill()


@pytest.fixture
def fresh(stall):
    stall.control(reply="Yes", delay_s=0.0, stall=False, script=[], retry_after=None, reset_stats=True)
    return stall


def judge_for(server: StallServer, **options) -> HttpJudge:
    options = {"backoff_s": 0.02, "timeout_s": 5, **options}
    return JUDGE_KINDS["http"](name="stall", url=server.url, **options)


def test_concurrency_limit_holds_on_both_sides(fresh):
    fresh.control(delay_s=0.25, reply="Yes {n}")
    judge = judge_for(fresh, concurrency=3)
    t0 = time.monotonic()
    results = judge.score(make_requests(9))
    elapsed = time.monotonic() - t0
    assert [r.score for r in results] == [1.0] * 9
    assert sorted(int(r.raw.split()[1]) for r in results) == list(range(1, 10))
    assert fresh.stats()["max_in_flight"] == 3 and judge.counters()["max_in_flight"] == 3
    assert elapsed >= 0.7  # three waves of 0.25 s
    assert all(0.2 <= r.latency_s < 0.7 for r in results)  # one request's time, not the queueing before it
    assert fresh.stats()["last_body"]["model"] == "stall-model"  # the server's only model, found at start


def test_stalled_server_is_cut_at_the_time_limit(fresh):
    fresh.control(stall=True)
    judge = judge_for(fresh, timeout_s=0.5, retries=1, backoff_s=0.05)
    t0 = time.monotonic()
    results = judge.score(make_requests(3))
    elapsed = time.monotonic() - t0
    assert 1.0 <= elapsed < 0.5 * 2 + 0.1 + 1.5  # two attempts of 0.5 s, one back-off, slack for a busy machine
    for r in results:
        assert r.score is None and r.attempts == 2
        assert r.error.startswith("timeout: no reply from") and "within 0.5 s" in r.error and "2 attempts" in r.error
    c = judge.counters()
    assert c["errors"] == {"timeout": 3} and c["attempt_errors"] == {"timeout": 6} and c["retries"] == 3


def test_429_and_500_are_retried_400_is_not(fresh):
    fresh.control(script=[500, 429], retry_after="0")
    judge = judge_for(fresh, retries=2)
    [ok] = judge.score(make_requests(1))
    assert ok.ok and ok.attempts == 3 and ok.score == 1.0
    c = judge.counters()
    assert c["retries"] == 2 and c["attempt_errors"] == {"http_500": 1, "http_429": 1} and c["errors"] == {}

    fresh.control(script=[400], reset_stats=True)
    [bad] = judge.score(make_requests(1))
    assert bad.score is None and bad.attempts == 1 and bad.error.startswith("http_400:") and "scripted 400" in bad.error
    assert fresh.stats()["requests"] == 1 and judge.counters()["errors"] == {"http_400": 1}

    fresh.control(script=[503, 500, 502], reset_stats=True)
    [gave_up] = judge.score(make_requests(1))
    assert gave_up.error.startswith("http_502:") and gave_up.attempts == 3 and fresh.stats()["requests"] == 3


def test_unparsable_reply_and_missing_gold_are_item_errors(fresh):
    fresh.control(reply="I am not sure.")
    judge = judge_for(fresh)
    requests = make_requests(2)
    requests[1] = make_requests(2, gold=None)[1]
    results = judge.score(requests)
    assert results[0].error.startswith("verdict: parser 'yes_no' could not read the reply")
    assert "'I am not sure.'" in results[0].error and results[0].raw == "I am not sure."
    assert results[1].error.startswith("prompt:") and results[1].attempts == 0
    assert fresh.stats()["requests"] == 1 and judge.counters()["errors"] == {"verdict": 1, "prompt": 1}


def test_killed_server_is_survived_and_used_again_after_restart():
    server = StallServer().start()
    try:
        server.control(delay_s=0.6)
        judge = judge_for(server, concurrency=2, retries=1, backoff_s=0.05, timeout_s=5)
        box = {}
        worker = threading.Thread(target=lambda: box.setdefault("results", judge.score(make_requests(6))))
        t0 = time.monotonic()
        worker.start()
        time.sleep(0.3)
        server.kill()  # mid-run: two requests in flight, four waiting
        worker.join(30)
        assert not worker.is_alive() and time.monotonic() - t0 < 10
        results = box["results"]
        assert len(results) == 6 and all(r.score is None and r.error.startswith("connection:") for r in results)
        assert judge.counters()["errors"] == {"connection": 6}

        server.start()  # the same port
        server.control(delay_s=0.0, reply="no")
        again = judge.score(make_requests(4))
        assert [r.score for r in again] == [0.0] * 4 and all(r.attempts == 1 for r in again)
    finally:
        if server.proc.poll() is None:
            server.kill()


def test_unreachable_server_at_start():
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.monotonic()
    with pytest.raises(JudgeUnavailable) as info:
        JUDGE_KINDS["http"](name="gone", url=url, model="m")
    assert time.monotonic() - t0 < 6
    message = str(info.value)
    assert "judge 'gone'" in message and url in message and "Start the chat-completions server" in message
    # without the check, the judge builds, and each item fails (never raises) with a connection error
    judge = JUDGE_KINDS["http"](name="gone", url=url, model="m", check_on_start=False, retries=1, backoff_s=0.01)
    [r] = judge.score(make_requests(1))
    assert r.error.startswith("connection:") and r.attempts == 2


def test_options_are_checked(fresh):
    with pytest.raises(TypeError, match=r"judge 'j' \(kind http\): unknown option\(s\) concurency; accepted options:"
                                        r" .*concurrency"):
        JUDGE_KINDS["http"](name="j", url=fresh.url, concurency=4)
    with pytest.raises(ValueError, match="option url must be"):
        JUDGE_KINDS["http"](name="j")
    with pytest.raises(ValueError, match="option concurrency must be an integer >= 1"):
        JUDGE_KINDS["http"](name="j", url=fresh.url, concurrency=0)
    with pytest.raises(ValueError, match="option model is required when check_on_start is false"):
        JUDGE_KINDS["http"](name="j", url=fresh.url, check_on_start=False)
    with pytest.raises(JudgeUnavailable, match="api_key_env names MMRFT_TEST_NO_SUCH_KEY"):
        JUDGE_KINDS["http"](name="j", url=fresh.url, api_key_env="MMRFT_TEST_NO_SUCH_KEY")
    judge = JUDGE_KINDS["http"](name="j", url=fresh.url, template="rubric", api_key="sk-test")
    assert judge.verdict_name == "scale"  # the template's own parser by default
    fresh.control(reply="Good. Score: 10")
    assert judge.score(make_requests(1, rubric="be right"))[0].score == 1.0
    assert fresh.stats()["last_auth"] == "Bearer sk-test"
    judge.close()
    with pytest.raises(RuntimeError, match="closed"):
        judge.score(make_requests(1))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_threads_or_sockets_left_and_works_under_a_running_loop(fresh):
    judge = judge_for(fresh, concurrency=4)
    judge.score(make_requests(4))  # warm imports
    threads, fds = threading.active_count(), open_fds()
    for _ in range(3):
        assert [r.score for r in judge.score(make_requests(8))] == [1.0] * 8
    assert threading.active_count() == threads and open_fds() <= fds

    async def inside_a_loop():
        return judge.score(make_requests(3))  # a synchronous call from async code

    assert [r.score for r in asyncio.run(inside_a_loop())] == [1.0] * 3
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", judge.score(make_requests(2))))  # a thread with no loop
    t.start()
    t.join(30)
    assert [r.score for r in box["r"]] == [1.0] * 2
    assert threading.active_count() == threads and open_fds() <= fds


def test_client_module_is_importable():
    httpx = http_client_module()
    assert hasattr(httpx, "AsyncClient") and hasattr(httpx, "TimeoutException")
