"""``transformers serve`` with a counting and fault-injecting wrapper, for the teacher tests.

    python tests/openai_server.py MODEL_DIR --port 8123 [--record requests.jsonl]
        [--require-key-env VAR]

Runs the real ``transformers serve`` app (its ``/v1/chat/completions`` and ``/v1/completions``
generate with the model in MODEL_DIR) behind an ASGI wrapper that, for every ``/v1/`` request:

- counts it and the requests in flight at once (``GET /_stats``);
- appends a line to ``--record`` when it arrives and when it is answered (the prompt, the seed,
  whether an ``Authorization`` header came: never its value), flushed at once, so the record of a
  server killed with SIGKILL is complete up to the kill;
- waits ``delay`` seconds before handing it to the app, or answers it with the next status of
  ``fail`` instead (``POST /_control {"delay": 0.3, "fail": [500, 429]}``);
- with ``--require-key-env VAR`` and ``POST /_control {"require_key": true}``, answers 401 unless
  the bearer token equals ``$VAR`` (as some hosted APIs do, the 401 echoes the token it got:
  clients must not copy it into their errors).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any


class Instrument:
    def __init__(self, app: Any, record: str | None, key: str | None) -> None:
        self.app = app
        self.record = open(record, "a", encoding="utf-8") if record else None  # noqa: SIM115
        self.key = key
        self.stats = {"received": 0, "answered": 0, "in_flight": 0, "max_in_flight": 0}
        self.delay = 0.0
        self.fail: list[int] = []
        self.require_key = False

    def _write(self, **line: Any) -> None:
        if self.record:
            self.record.write(json.dumps({"pid": os.getpid(), **line}) + "\n")
            self.record.flush()

    async def _reply(self, send: Any, status: int, body: Any, headers: dict | None = None) -> None:
        raw = json.dumps(body).encode()
        head = [(b"content-type", b"application/json")]
        head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": raw})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/v1/") or path.startswith("/_")):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        if path == "/_stats":
            return await self._reply(send, 200, self.stats)
        if path == "/_control":
            control = json.loads(raw or b"{}")
            self.delay = float(control.get("delay", self.delay))
            self.fail = list(control.get("fail", self.fail))
            self.require_key = bool(control.get("require_key", self.require_key))
            if control.get("reset"):
                self.stats.update(received=0, answered=0, max_in_flight=self.stats["in_flight"])
            return await self._reply(send, 200, {"delay": self.delay, "fail": self.fail})

        body = json.loads(raw or b"{}")
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        auth = headers.get("authorization")
        messages = body.get("messages") or [{}]
        given = body.get("prompt", messages[-1].get("content"))
        self._write(
            event="received", path=path, input=given, seed=body.get("seed"), auth=auth is not None
        )
        s = self.stats
        s["received"] += 1
        s["in_flight"] += 1
        s["max_in_flight"] = max(s["max_in_flight"], s["in_flight"])
        status = {"code": 0, "done": False}

        replayed = False

        async def replay() -> dict:
            # The body once, as it came; after that the real channel, which blocks until the
            # client disconnects (an app that listens for the disconnect, as transformers>=5.25
            # does, would spin forever on a replayed body and grow without bound).
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        def finish() -> None:
            # Counted before the last chunk goes out: a client whose reply is complete may send
            # its next request at once, which must not find this one still in flight.
            if status["done"]:
                return
            status["done"] = True
            s["in_flight"] -= 1
            if status["code"] == 200:
                s["answered"] += 1
                self._write(event="answered", path=path, input=given)

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finish()
            await send(message)

        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.require_key and auth != f"Bearer {self.key}":
                got = (auth or "").removeprefix("Bearer ")
                msg = f"Incorrect API key provided: {got}"
                return await self._reply(watch, 401, {"error": {"message": msg}})
            if self.fail:
                code = self.fail.pop(0)
                extra = {"retry-after": "0"} if code == 429 else {}
                return await self._reply(watch, code, {"error": {"message": "injected"}}, extra)
            await self.app(scope, replay, watch)
        finally:
            finish()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record")
    parser.add_argument("--require-key-env")
    args = parser.parse_args()
    key = os.environ[args.require_key_env] if args.require_key_env else None

    from transformers.cli import serve
    from transformers.cli.serving import server

    build = server.build_server

    def build_instrumented(*a: Any, **kw: Any) -> Instrument:
        return Instrument(build(*a, **kw), args.record, key)

    server.build_server = build_instrumented  # Serve imports it when it is constructed
    serve.Serve(force_model=args.model, host="127.0.0.1", port=args.port, device="cpu")


if __name__ == "__main__":
    main()
