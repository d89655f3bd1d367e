"""The AWS Lambda Runtime API's invocation routes, on 127.0.0.1, for ``awslambdaric``.

In AWS (and in the Runtime Interface Emulator, which cannot be fetched here) a process
inside the function's sandbox serves this API; ``awslambdaric`` asks it for the next event
and posts the answer back. This server hands out the events a test queues and records
each answer, so the real ``awslambdaric`` can run the real handler from a Lambda image
context. It implements what the runtime client calls, as documented in
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html:

* ``GET  /2018-06-01/runtime/invocation/next`` (a long poll for the next event)
* ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``.../{id}/error``
* ``POST /2018-06-01/runtime/init/error``
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PREFIX = "/2018-06-01/runtime"


@dataclass
class RuntimeApi:
    """A running Runtime API; ``invoke`` an event and get the handler's answer."""

    server: ThreadingHTTPServer
    events: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    answers: dict[str, tuple[str, Any]] = field(default_factory=dict)
    init_errors: list[Any] = field(default_factory=list)
    first_poll: float | None = None
    done: threading.Condition = field(default_factory=threading.Condition)

    @property
    def address(self) -> str:
        """``host:port``, the value of ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def invoke(self, event: Any, timeout: float = 60.0) -> tuple[str, Any]:
        """Queue ``event`` and wait for ``("response" | "error", decoded body)``."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        with self.done:
            while request_id not in self.answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.init_errors:
                    raise AssertionError(
                        f"no answer to {request_id} in {timeout} s; init errors: {self.init_errors}"
                    )
                self.done.wait(min(left, 0.5))
            return self.answers[request_id]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def start_runtime_api() -> RuntimeApi:
    """Start the Runtime API on a free port of 127.0.0.1, in a daemon thread."""
    api: RuntimeApi

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path != f"{_PREFIX}/invocation/next":
                self._reply(404, b'{"errorType": "NotFound"}')
                return
            if api.first_poll is None:
                api.first_poll = time.monotonic()
            request_id, body = api.events.get()
            deadline_ms = int((time.time() + 30) * 1000)
            self._reply(
                200,
                body,
                {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": (
                        "arn:aws:lambda:us-east-1:123456789012:function:mlcycle-test"
                    ),
                    "Lambda-Runtime-Trace-Id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
                },
            )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            parts = self.path[len(_PREFIX) :].strip("/").split("/")
            if parts == ["init", "error"]:
                api.init_errors.append(body)
            elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                with api.done:
                    api.answers[parts[1]] = (parts[2], body)
                    api.done.notify_all()
            else:
                self._reply(404, b'{"errorType": "NotFound"}')
                return
            self._reply(202, b'{"status": "OK"}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api = RuntimeApi(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return api
