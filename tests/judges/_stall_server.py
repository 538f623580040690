"""A small OpenAI-compatible chat-completions server for the HTTP judge's failure tests (stdlib only, asyncio).

    python tests/judges/_stall_server.py [--port N]     # prints "PORT <n>" once listening

Endpoints: `GET /v1/models` (one model, "stall-model"), `POST /v1/chat/completions`, and two for the test:
`POST /control` sets how chat requests are answered, `GET /stats` says what the server saw. A control body:

    {"reply": "Yes",        # the assistant message's content ("{n}" is replaced by the request's number)
     "delay_s": 0.0,        # wait this long before answering
     "stall": false,        # never answer (the client must give up)
     "script": [500, 429],  # answer the next requests with these HTTP statuses, one each, then normally
     "retry_after": null,   # a Retry-After header (seconds) on 429/503 answers
     "reset_stats": false}

`/stats`: requests (chat requests received), in_flight, max_in_flight (most chat requests being answered at once,
counted on the server), statuses (answers by status), last_body (the last chat request's JSON body), last_auth (its
Authorization header).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

STATE = {"reply": "Yes", "delay_s": 0.0, "stall": False, "script": [], "retry_after": None}
STATS = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "statuses": {}, "last_body": None, "last_auth": None}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


def reset_stats() -> None:
    STATS.update(requests=0, max_in_flight=STATS["in_flight"], statuses={}, last_body=None)


async def read_request(reader: asyncio.StreamReader):
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if int(headers.get("content-length", 0) or 0):
        body = await reader.readexactly(int(headers["content-length"]))
    return method, path, headers, body


def response(status: int, payload, extra: dict | None = None) -> bytes:
    data = json.dumps(payload).encode()
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Content-Type: application/json",
            f"Content-Length: {len(data)}", "Connection: keep-alive"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def chat(body: bytes, headers: dict) -> bytes:
    STATS["requests"] += 1
    STATS["last_auth"] = headers.get("authorization")
    n = STATS["requests"]
    STATS["in_flight"] += 1
    STATS["max_in_flight"] = max(STATS["max_in_flight"], STATS["in_flight"])
    try:
        STATS["last_body"] = json.loads(body or b"{}")
        if STATE["stall"]:
            await asyncio.sleep(3600)
        if STATE["delay_s"]:
            await asyncio.sleep(STATE["delay_s"])
        if STATE["script"]:
            status = int(STATE["script"].pop(0))
            extra = {"Retry-After": STATE["retry_after"]} if STATE["retry_after"] is not None and status in (429, 503) \
                else None
            STATS["statuses"][str(status)] = STATS["statuses"].get(str(status), 0) + 1
            return response(status, {"error": {"message": f"scripted {status}", "code": status}}, extra)
        STATS["statuses"]["200"] = STATS["statuses"].get("200", 0) + 1
        content = str(STATE["reply"]).replace("{n}", str(n))
        return response(200, {"id": f"c{n}", "object": "chat.completion", "model": "stall-model",
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": content}}]})
    finally:
        STATS["in_flight"] -= 1


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            req = await read_request(reader)
            if req is None:
                break
            method, path, headers, body = req
            if method == "GET" and path.rstrip("/") == "/v1/models":
                out = response(200, {"object": "list", "data": [{"id": "stall-model", "object": "model"}]})
            elif method == "POST" and path.rstrip("/") == "/v1/chat/completions":
                out = await chat(body, headers)
            elif method == "POST" and path == "/control":
                ctl = json.loads(body or b"{}")
                if ctl.pop("reset_stats", False):
                    reset_stats()
                STATE.update(ctl)
                out = response(200, {"state": STATE})
            elif method == "GET" and path == "/stats":
                out = response(200, STATS)
            else:
                out = response(404, {"error": f"no route {method} {path}"})
            writer.write(out)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(ap.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)
