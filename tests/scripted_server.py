"""A real HTTP server on 127.0.0.1 that answers from a script, for fault-injection tests of served backends.

    with ScriptedServer(models=["base-model", "tuned"]) as server:
        server.script(Reply(429, headers={"Retry-After": "1"}), Reply(500))   # the next two POSTs
        backend = OpenAIBackend(server.url, "base-model", ["tuned"])
        ...
        server.requests            # every request received: path, headers, JSON body, arrival time

POST requests take the next scripted :class:`Reply` while there is one, then the
``respond`` function (by default a deterministic fake chat model: ``[MODEL] last user
message``). ``GET /v1/models`` lists ``models`` (404 when it is None, or a scripted Reply).
A Reply can also delay its answer past the client's timeout, or close the connection
without answering. Every wait is bounded, and the server stops with the ``with`` block.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "Reply", "ScriptedServer", "chat_reply", "echo_chat"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    """A dict or list is sent as JSON; str or bytes as they are (a malformed body)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait this long before answering (longer than the client's timeout: a timeout)."""
    close: bool = False
    """Close the connection without answering (a dropped connection)."""


@dataclass(frozen=True)
class Received:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: Any
    """The decoded JSON body (None when empty or not JSON)."""
    at: float
    """time.monotonic() when it arrived."""


def chat_reply(text: str, prompt_tokens: int = 7, completion_tokens: int = 3, model: str = "m") -> dict[str, Any]:
    """A chat-completions body as OpenAI-compatible servers send it."""
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def echo_chat(request: Received) -> Reply:
    """A deterministic fake chat model: answers ``[MODEL] <last user message>``."""
    body = request.body or {}
    if not request.path.endswith("/chat/completions"):
        return Reply(404, {"error": {"message": f"no route {request.path}"}})
    user = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    model = body.get("model", "?")
    return Reply(200, chat_reply(f"[{model}] {user[-1] if user else ''}", model=model))


class ScriptedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) answering from a script."""

    def __init__(self, respond: Callable[[Received], Reply] = echo_chat, models: Sequence[str] | Reply | None = ("base-model",)) -> None:
        self.respond = respond
        self.models = models
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next POST requests, in order."""
        with self._lock:
            self._script.extend(replies)

    def posts(self, path_suffix: str = "") -> list[Received]:
        """The POST requests received so far (whose path ends with ``path_suffix``)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith(path_suffix)]

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut the open keep-alive connections: the server is gone, as if killed."""
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: Received) -> Reply:
        if request.method == "GET" and request.path.endswith("/models"):
            if isinstance(self.models, Reply):
                return self.models
            if self.models is None:
                return Reply(404, {"error": {"message": "not found"}})
            return Reply(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "scripted"} for m in self.models]})
        with self._lock:
            scripted = self._script.popleft() if request.method == "POST" and self._script else None
        return scripted if scripted is not None else self.respond(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do: a dropped connection is a real drop

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.append(self.connection)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                received = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with server._lock:
                    server.requests.append(received)
                reply = server._next_reply(received)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.close:
                    self.close_connection = True
                    return
                if isinstance(reply.body, (dict, list)):
                    data, ctype = json.dumps(reply.body).encode(), "application/json"
                elif isinstance(reply.body, str):
                    data, ctype = reply.body.encode(), "text/plain"
                else:
                    data, ctype = reply.body or b"", "application/octet-stream"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) first
                    self.close_connection = True

            do_GET = do_POST = _serve

        return Handler
