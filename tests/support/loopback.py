"""A threaded HTTP server on a free 127.0.0.1 port, for the test servers that speak OpenAI's API."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(handler: type[BaseHTTPRequestHandler], name: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving ``handler`` on loopback in a daemon thread; the port is the server's to pick."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return httpd, thread


def shut(httpd: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop what :func:`serve` started and free its port."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if thread is not None:
        thread.join(timeout=5)
