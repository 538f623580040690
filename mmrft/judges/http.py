"""`HttpJudge` (kind `http`): a generative judge behind any OpenAI-compatible chat-completions server.

`vllm serve`, `transformers serve`, SGLang or a hosted API: each request becomes a POST to `{url}/chat/completions`
with the judge prompt (`mmrft.judges.prompts`, images as PNG data URLs), and the reply's text goes through the
verdict parser (`mmrft.judges.verdicts`) to a score in [0, 1].

Configuration (`rewards.judges.<name>`, kind `http`):

    url: http://127.0.0.1:8000/v1   # the API base (what `/models` and `/chat/completions` hang off)
    model: Qwen/Qwen2.5-VL-7B-Instruct   # the name the server serves; omitted: the server's only listed model
    template: correctness           # a built-in template name or a template string (see prompts.py)
    verdict: yes_no                 # default: the template's own parser (yes_no for custom templates)
    verdict_options: {}             # e.g. {low: 1, high: 5} for `scale`
    system: null                    # an optional system message
    api_key: null                   # or api_key_env: OPENAI_API_KEY (the variable's name, read at start)
    concurrency: 8                  # requests in flight at most (per `score` call)
    timeout_s: 60                   # per attempt, the whole exchange (connect, send, wait, read)
    retries: 2                      # extra attempts after a timeout, a connection error, HTTP 429 or 5xx
    backoff_s: 0.5                  # first back-off; doubled each retry, times a random factor in [0.5, 1.5)
    max_tokens: 64
    temperature: 0.0
    check_on_start: true            # GET {url}/models when built; unreachable -> JudgeUnavailable
    extra_body: {}                  # more fields for the request body, e.g. {chat_template_kwargs: {...}}

Failure handling. Building the judge with `check_on_start` raises `JudgeUnavailable` (naming the judge, the URL and
what to do) when the server cannot be reached. After that, `score` never raises for an item and never hangs: each
attempt is cut at `timeout_s`; timeouts, connection errors, HTTP 429 and 5xx are retried `retries` times with
exponential back-off (a 429/503's numeric `Retry-After` is honoured, up to `timeout_s`); other 4xx are not retried.
An item that still fails, or whose reply the verdict parser cannot read, gets `JudgeResult(score=None, error=...)`;
the error starts with its kind (`timeout`, `connection`, `http_<status>`, `bad_response`, `verdict`, `prompt`,
`client`). So an item takes at most about `(retries + 1) * timeout_s` plus the back-offs once it has its slot. There
is no failed state between calls: a server that died and came back is simply used by the next call. A result's
`latency_s` runs from its first attempt's start (once a slot was free: queueing behind `concurrency` is not counted)
to its verdict, retries and back-offs included; `attempts` counts the POSTs (0 when the prompt could not be built).

Event loop and resources. `score` is synchronous: it runs its own asyncio event loop (`asyncio.run`) with a fresh
`AsyncClient` whose connections are closed before it returns, so nothing (thread, socket, loop) outlives a call;
called from a thread whose event loop is running (async code, a notebook), it runs that loop in a helper thread for
the call. Calls from several threads are safe and independent: each has its own loop, client and `concurrency`
limit. `close()` only marks the judge closed (later calls raise `RuntimeError`).

Counters (for tests and metrics), cumulative over the judge's life, read with `counters()`: `items` (requests
judged), `requests` (HTTP attempts sent), `retries`, `errors` (failed items by kind), `attempt_errors` (failed
attempts by kind, retried ones included) and `max_in_flight` (most attempts in flight at once, client side).

The HTTP client is `httpx2` (the maintained successor of httpx, module `httpx2`, which `huggingface_hub` already
depends on); `httpx` is used when `httpx2` is not installed. Same API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from mmrft.judges.base import JUDGE_KINDS, JudgeRequest, JudgeResult, JudgeUnavailable
from mmrft.judges.prompts import (TEMPLATE_VERDICTS, build_messages, reject_unknown_options, resolve_template,
                                  to_openai_messages)
from mmrft.judges.verdicts import VerdictError, make_verdict, quote

__all__ = ["HttpJudge", "RETRYABLE"]

log = logging.getLogger("mmrft.judges")

#: Error kinds of an attempt that are retried (besides any HTTP 5xx).
RETRYABLE = ("timeout", "connection", "http_429")
START_CHECK_TIMEOUT_S = 5.0


def http_client_module():
    """`httpx2` when installed (it is a dependency of huggingface_hub), else `httpx`."""
    try:
        import httpx2 as httpx
    except ImportError:
        try:
            import httpx  # type: ignore[no-redef]
        except ImportError:
            raise ImportError("the http judge needs an HTTP client: pip install httpx2 (or httpx)") from None
    return httpx


def _retryable(kind: str) -> bool:
    return kind in RETRYABLE or (kind.startswith("http_5"))


def _verdict_name(template: str, verdict: Optional[str]) -> str:
    if verdict is not None:
        return verdict
    return TEMPLATE_VERDICTS.get(template, "yes_no")


class _Attempt:
    __slots__ = ("kind", "detail", "content", "retry_after", "started")

    def __init__(self, kind: str, detail: str = "", content: str = "", retry_after: Optional[float] = None):
        self.kind, self.detail, self.content, self.retry_after = kind, detail, content, retry_after
        self.started = time.monotonic()


def _check(name: str, option: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"judge {name!r} (kind http): option {option} must be {expected}, got {value!r}")


@JUDGE_KINDS.register("http")
class HttpJudge:
    """A generative judge over an OpenAI-compatible chat-completions API (see the module docstring for the
    options, failure handling, event-loop behaviour and counters)."""

    kind = "http"

    def __init__(
        self,
        name: str,
        *,
        url: Optional[str] = None,
        model: Optional[str] = None,
        template: str = "correctness",
        verdict: Optional[str] = None,
        verdict_options: Optional[Mapping[str, Any]] = None,
        system: Optional[str] = None,
        api_key: Optional[str] = None,
        api_key_env: Optional[str] = None,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_tokens: int = 64,
        temperature: float = 0.0,
        check_on_start: bool = True,
        extra_body: Optional[Mapping[str, Any]] = None,
        **unknown: Any,
    ) -> None:
        self.name = name
        reject_unknown_options(self.kind, name, unknown, _OPTIONS)
        _check(name, "url", url, isinstance(url, str) and url.startswith(("http://", "https://")),
               "the server's API base URL, e.g. http://127.0.0.1:8000/v1")
        _check(name, "concurrency", concurrency, _is_int(concurrency) and concurrency >= 1, "an integer >= 1")
        _check(name, "timeout_s", timeout_s, _is_number(timeout_s) and timeout_s > 0, "a number > 0")
        _check(name, "retries", retries, _is_int(retries) and retries >= 0, "an integer >= 0")
        _check(name, "backoff_s", backoff_s, _is_number(backoff_s) and backoff_s >= 0, "a number >= 0")
        _check(name, "max_tokens", max_tokens, _is_int(max_tokens) and max_tokens >= 1, "an integer >= 1")
        _check(name, "temperature", temperature, _is_number(temperature) and temperature >= 0, "a number >= 0")
        _check(name, "extra_body", extra_body, extra_body is None or isinstance(extra_body, Mapping), "a mapping")
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/chat/completions"
        self.model = model
        self.template = resolve_template(template)
        self.verdict_name = _verdict_name(template, verdict)
        self._verdict = make_verdict(self.verdict_name, verdict_options, judge=name)
        self.system = system
        self.concurrency = int(concurrency)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.extra_body = _plain(dict(extra_body or {}))
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise JudgeUnavailable(f"judge {name!r} (kind http): api_key_env names {api_key_env}, which is not "
                                       "set (or empty) in the environment")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._httpx = http_client_module()
        self._lock = threading.Lock()
        self._closed = False
        self.items = 0
        self.requests = 0
        self.retry_count = 0
        self.errors: Counter[str] = Counter()
        self.attempt_errors: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        if check_on_start:
            self._check_server()
        elif self.model is None:
            raise ValueError(f"judge {name!r} (kind http): option model is required when check_on_start is false "
                             "(with the check, a server that lists exactly one model lends its name)")

    # -- start-up check -----------------------------------------------------------------------------------------

    def _unavailable(self, what: str) -> JudgeUnavailable:
        return JudgeUnavailable(
            f"judge {self.name!r} (kind http): {what}. Start the chat-completions server first (e.g. `vllm serve "
            f"MODEL --port 8000` or `transformers serve MODEL --port 8000`, then url: http://127.0.0.1:8000/v1) or "
            f"fix rewards.judges.{self.name}.url; check_on_start: false skips this check")

    def _check_server(self) -> None:
        """GET {url}/models with a short timeout; `JudgeUnavailable` when the server cannot be reached or refuses."""
        httpx = self._httpx
        where = f"{self.url}/models"
        try:
            with httpx.Client(timeout=min(START_CHECK_TIMEOUT_S, self.timeout_s), headers=self._headers) as client:
                response = client.get(where)
        except httpx.HTTPError as e:
            raise self._unavailable(f"cannot reach the server at {self.url} (GET {where}: {type(e).__name__}: "
                                    f"{e or 'no detail'})") from None
        if response.status_code in (401, 403):
            raise JudgeUnavailable(f"judge {self.name!r} (kind http): the server at {self.url} refused the "
                                   f"credentials (HTTP {response.status_code} on GET {where}); set api_key or "
                                   "api_key_env")
        if response.status_code == 404:
            hint = "" if self.url.endswith("/v1") else " (is the url the API base, usually ending in /v1?)"
            raise self._unavailable(f"GET {where} answered HTTP 404{hint}")
        if response.status_code >= 400:
            raise self._unavailable(f"GET {where} answered HTTP {response.status_code}: "
                                    f"{quote(response.text, 200)}")
        try:
            served = [str(m["id"]) for m in response.json().get("data", [])]
        except Exception:
            served = []
        if self.model is None:
            if len(served) != 1:
                raise ValueError(f"judge {self.name!r} (kind http): option model is not set and the server at "
                                 f"{self.url} lists {len(served)} models ({', '.join(served) or 'none'}); set model")
            self.model = served[0]
            log.info("judge %r: using the server's only model %r", self.name, self.model)
        elif served and self.model not in served:
            log.warning("judge %r: the server at %s lists %s, not %r; requests name %r anyway", self.name, self.url,
                        ", ".join(served), self.model, self.model)

    # -- scoring --------------------------------------------------------------------------------------------------

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """One result per request, in order; never raises for an item (see the module docstring)."""
        if self._closed:
            raise RuntimeError(f"judge {self.name!r} is closed")
        requests = list(requests)
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._score_all(requests))
        # This thread runs an event loop (async caller, notebook): asyncio.run cannot nest, use a helper thread.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"judge-{self.name}") as pool:
            return pool.submit(asyncio.run, self._score_all(requests)).result()

    async def _score_all(self, requests: list[JudgeRequest]) -> list[JudgeResult]:
        httpx = self._httpx
        semaphore = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        image_cache: dict = {}
        url_cache: dict = {}
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits,
                                     headers=self._headers) as client:
            return list(await asyncio.gather(*(self._one(client, semaphore, r, image_cache, url_cache)
                                                for r in requests)))

    def body(self, request: JudgeRequest, image_cache: Optional[dict] = None,
             url_cache: Optional[dict] = None) -> dict:
        """The JSON body of the chat-completions request for `request` (raises `PromptError` / `DataError`)."""
        messages = to_openai_messages(build_messages(request, self.template, self.system, image_cache=image_cache),
                                      url_cache)
        body: dict[str, Any] = {"messages": messages, "max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.model is not None:
            body["model"] = self.model
        body.update(self.extra_body)
        return body

    async def _one(self, client, semaphore: asyncio.Semaphore, request: JudgeRequest, image_cache: dict,
                   url_cache: dict) -> JudgeResult:
        t0 = time.monotonic()  # reset to the first attempt's start: waiting for a free slot is not latency
        with self._lock:
            self.items += 1
        try:
            body = self.body(request, image_cache, url_cache)
        except Exception as e:  # PromptError (a missing gold/rubric), DataError (an unreadable image)
            return self._failed("prompt", f"cannot build the judge prompt: {e}", t0, attempts=0)
        attempts = 0
        while True:
            attempts += 1
            outcome = await self._attempt(client, semaphore, body)
            if attempts == 1:
                t0 = outcome.started
            if outcome.kind == "ok":
                break
            with self._lock:
                self.attempt_errors[outcome.kind] += 1
            if not _retryable(outcome.kind) or attempts > self.retries:
                return self._failed(outcome.kind, outcome.detail, t0, attempts)
            delay = self.backoff_s * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, self.timeout_s))
            with self._lock:
                self.retry_count += 1
            await asyncio.sleep(delay)
        reply = outcome.content
        try:
            score = float(self._verdict(reply))
        except VerdictError as e:
            return self._failed("verdict", f"parser {self.verdict_name!r} could not read the reply: {e}", t0,
                                attempts, raw=reply)
        except Exception as e:  # a user parser's bug must not take the batch down
            return self._failed("verdict", f"parser {self.verdict_name!r} failed: {type(e).__name__}: {e} "
                                f"(reply {quote(reply)})", t0, attempts, raw=reply)
        return JudgeResult(score=score, raw=reply, latency_s=time.monotonic() - t0, attempts=attempts)

    async def _attempt(self, client, semaphore: asyncio.Semaphore, body: dict) -> _Attempt:
        """One POST once a slot is free (counted in flight while it runs); `started` is when the slot was got."""
        async with semaphore:
            started = time.monotonic()
            with self._lock:
                self.requests += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                outcome = await self._post(client, body)
            finally:
                with self._lock:
                    self.in_flight -= 1
        outcome.started = started
        return outcome

    async def _post(self, client, body: dict) -> _Attempt:
        httpx = self._httpx
        try:
            response = await asyncio.wait_for(client.post(self.endpoint, json=body), self.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            return _Attempt("timeout", f"no reply from {self.endpoint} within {self.timeout_s:g} s")
        except httpx.TransportError as e:
            return _Attempt("connection", f"{self.endpoint}: {type(e).__name__}: {e or 'no detail'}")
        except Exception as e:
            return _Attempt("client", f"{self.endpoint}: {type(e).__name__}: {e}")
        status = response.status_code
        if status != 200:
            retry_after = None
            if status in (429, 503):
                try:
                    retry_after = max(0.0, float(response.headers.get("retry-after", "")))
                except ValueError:
                    pass
            return _Attempt(f"http_{status}", f"{self.endpoint} answered HTTP {status}: {quote(response.text, 200)}",
                            retry_after=retry_after)
        try:
            content = response.json()["choices"][0]["message"].get("content")
        except Exception:
            return _Attempt("bad_response", f"{self.endpoint} answered 200 without choices[0].message: "
                            f"{quote(response.text, 200)}")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return _Attempt("ok", content=content if isinstance(content, str) else "")

    def _failed(self, kind: str, detail: str, t0: float, attempts: int, raw: str = "") -> JudgeResult:
        with self._lock:
            self.errors[kind] += 1
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return JudgeResult(score=None, raw=raw, error=f"{kind}: {detail}{tries}", latency_s=time.monotonic() - t0,
                           attempts=attempts)

    # -- bookkeeping ----------------------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """A snapshot of the counters (see the module docstring)."""
        with self._lock:
            return {"items": self.items, "requests": self.requests, "retries": self.retry_count,
                    "errors": dict(self.errors), "attempt_errors": dict(self.attempt_errors),
                    "max_in_flight": self.max_in_flight}

    def close(self) -> None:
        """Nothing stays open between calls; marks the judge closed."""
        self._closed = True

    def __enter__(self) -> "HttpJudge":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpJudge(name={self.name!r}, url={self.url!r}, model={self.model!r}, verdict={self.verdict_name!r})"


_OPTIONS = ("url", "model", "template", "verdict", "verdict_options", "system", "api_key", "api_key_env",
            "concurrency", "timeout_s", "retries", "backoff_s", "max_tokens", "temperature", "check_on_start",
            "extra_body")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """Config containers (OmegaConf's DictConfig/ListConfig are Mappings/Sequences) -> plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (isinstance(value, Sequence) and not isinstance(value, (str, bytes))):
        return [_plain(v) for v in value]
    return value
