"""A small OpenAI-compatible chat-completions server for tests (stdlib only, 127.0.0.1, free port).

Scriptable: answers come from a queue of contents (or :class:`ScriptedReply` for errors, custom
usage and tool calls) or from a callable that sees the request. Every request body is recorded, so
tests can assert on the prompts, ``tools`` and ``response_format`` a client sent. Supports
``stream: true`` (server-sent events) as well::

    with OpenAICompatServer(['{"approve": true, "reason": "..."}']) as server:
        model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
        model.invoke("hi")
        assert "hi" in server.prompts()[0]
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

from tests.support.loopback import serve, shut


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer: its content, HTTP status, and the usage numbers reported for it."""

    content: str = ""
    status: int = 200
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: Seconds the server waits before answering (a slow model, for client time-outs).
    delay_s: float = 0.0
    #: Answer with one tool call whose ``arguments`` is this text, sent as it is (so it may be
    #: broken JSON), instead of with ``content``. The tool is the one the request's
    #: ``tool_choice`` names, else its first tool, else ``tool_name``.
    tool_arguments: str | None = None
    tool_name: str = "answer"


Script = Union[str, ScriptedReply]
Responder = Callable[[dict[str, Any]], Script]


def message_text(message: dict[str, Any]) -> str:
    """The text of one request message (string content or a list of text parts)."""
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


class OpenAICompatServer:
    """Serves ``/v1/chat/completions`` and ``/v1/models`` on 127.0.0.1 from a script.

    Args:
        responses: Contents served in order, or a callable ``request_body -> content`` used for
            every request. When the queue is empty the server answers HTTP 500.
        prompt_tokens: Usage reported per reply unless a :class:`ScriptedReply` says otherwise.
        completion_tokens: Likewise for completion tokens.
    """

    def __init__(
        self, responses: Iterable[Script] | Responder = (), *, prompt_tokens: int = 11, completion_tokens: int = 7
    ) -> None:
        self._lock = threading.Lock()
        self._responder: Responder | None = responses if callable(responses) else None
        self._queue: deque[Script] = deque() if callable(responses) else deque(responses)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        #: Every request body received, in arrival order.
        self.requests: list[dict[str, Any]] = []
        #: Usage the server has reported so far (successful replies only).
        self.served_prompt_tokens = 0
        self.served_completion_tokens = 0
        #: Chat requests being answered now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        #: Called (outside the server's lock) by each request before it is answered, e.g. a
        #: barrier that only lets requests through once several are in flight together.
        self.hold: Callable[[], None] | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ scripting and inspection

    def push(self, *responses: Script) -> None:
        """Append answers to the queue."""
        with self._lock:
            self._queue.extend(responses)

    def prompts(self) -> list[str]:
        """Each request's messages joined into one text, in arrival order."""
        with self._lock:
            return ["\n".join(message_text(m) for m in r.get("messages", [])) for r in self.requests]

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def _next(self, body: dict[str, Any]) -> ScriptedReply:
        with self._lock:
            self.requests.append(body)
            if self._responder is not None:
                script: Script | None = self._responder(body)
            else:
                script = self._queue.popleft() if self._queue else None
        if script is None:
            return ScriptedReply(content="test server: no scripted response left", status=500)
        reply = ScriptedReply(content=script) if isinstance(script, str) else script
        if reply.status == 200:
            reply = replace(
                reply,
                prompt_tokens=self.prompt_tokens if reply.prompt_tokens is None else reply.prompt_tokens,
                completion_tokens=self.completion_tokens if reply.completion_tokens is None else reply.completion_tokens,
            )
            with self._lock:
                self.served_prompt_tokens += reply.prompt_tokens or 0
                self.served_completion_tokens += reply.completion_tokens or 0
        return reply

    # ------------------------------------------------------------------ life cycle

    def start(self) -> "OpenAICompatServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _send_json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send_json(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
                else:
                    self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as exc:
                    self._send_json(400, {"error": {"message": f"bad JSON: {exc}", "type": "invalid_request"}})
                    return
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.hold is not None:
                        server.hold()
                    self._answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict[str, Any]) -> None:
                reply = server._next(body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status != 200:
                    self._send_json(reply.status, {"error": {"message": reply.content, "type": "server_error"}})
                elif body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._send_json(200, server._completion(body, reply))

            def _stream(self, body: dict[str, Any], reply: ScriptedReply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": body.get("model", "test-model")}
                message = server._message(body, reply)
                delta = {"role": "assistant", "content": message["content"]}
                if "tool_calls" in message:
                    delta["tool_calls"] = [{"index": 0, **message["tool_calls"][0]}]
                chunks = [
                    {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(message)}]},
                ]
                if (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append({**base, "choices": [], "usage": server._usage(reply)})
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self._httpd, self._thread = serve(Handler, "openai-test-server")
        return self

    def stop(self) -> None:
        shut(self._httpd, self._thread)
        self._httpd = self._thread = None

    def __enter__(self) -> "OpenAICompatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ payloads

    @staticmethod
    def _usage(reply: ScriptedReply) -> dict[str, int]:
        p, c = reply.prompt_tokens or 0, reply.completion_tokens or 0
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _message(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        """The assistant message: the reply's content, or one call of the tool the request forces."""
        if reply.tool_arguments is None:
            return {"role": "assistant", "content": reply.content}
        choice = body.get("tool_choice")
        tools = body.get("tools") or []
        if isinstance(choice, dict) and "function" in choice:
            name = choice["function"]["name"]
        elif tools:
            name = tools[0]["function"]["name"]
        else:
            name = reply.tool_name
        call = {"id": f"call_test_{len(self.requests)}", "type": "function",
                "function": {"name": name, "arguments": reply.tool_arguments}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    def _completion(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        message = self._message(body, reply)
        return {
            "id": f"chatcmpl-test-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(message), "logprobs": None}],
            "usage": self._usage(reply),
        }


def _finish(message: dict[str, Any]) -> str:
    return "tool_calls" if "tool_calls" in message else "stop"
