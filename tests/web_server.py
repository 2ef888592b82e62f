"""Pytest plugin: a real uvicorn server on a free loopback port, in a thread.

The port is reserved (a bound, listening socket) before the app exists, so a test can
write `base_url` into its config first, the way mails carry links to `newsletter serve`:

    def test_x(web_server):
        write_config(f'base_url = "{web_server.url}"' ...)
        web_server.start(create_app(config, store))
        httpx.get(web_server.url + "/...")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import ASGIApp

from newsletter.web import SERVER_OPTIONS

STARTUP_TIMEOUT = 10.0


class WebServer:
    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, app: ASGIApp) -> str:
        """Serve `app` as `newsletter serve` does until the test ends; returns the base URL."""
        config = uvicorn.Config(app, log_level="warning", lifespan="off", **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=STARTUP_TIMEOUT)
        self.socket.close()


@pytest.fixture
def web_server() -> Iterator[WebServer]:
    server = WebServer()
    yield server
    server.stop()
