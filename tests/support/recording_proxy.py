"""A pass-through HTTP proxy on 127.0.0.1 that records every chat completion a real server gave.

The ``real_model`` tests compare what the lab counted with what the server reported, reply by
reply, and judge each reply's content; ``llama-server`` keeps no per-request record itself."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.loopback import serve, shut


@dataclass(frozen=True)
class Exchange:
    """One request and the server's answer."""

    request: dict[str, Any]
    status: int
    response: dict[str, Any]
    seconds: float

    @property
    def system(self) -> str:
        return str(self.request.get("messages", [{}])[0].get("content", ""))

    @property
    def content(self) -> str:
        choices = self.response.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")

    @property
    def usage(self) -> dict[str, int]:
        return dict(self.response.get("usage") or {})


class RecordingProxy:
    """Forwards ``/v1/...`` to ``upstream`` (``http://127.0.0.1:PORT``) and keeps every exchange."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "proxy not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "RecordingProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = urllib.request.Request(proxy.upstream + self.path, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(req, timeout=600) as r:
                        status, data = r.status, r.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                try:
                    parsed = json.loads(data or b"{}")
                except ValueError:
                    parsed = {"raw": data.decode(errors="replace")}
                with proxy._lock:
                    proxy.exchanges.append(Exchange(json.loads(body or b"{}"), status, parsed, time.monotonic() - started))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd, self._thread = serve(Handler, "recording-proxy")
        return self

    def stop(self) -> None:
        shut(self._httpd, self._thread)
        self._httpd = self._thread = None

    def __enter__(self) -> "RecordingProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
