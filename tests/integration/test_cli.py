"""The command line a gunicorn or uvicorn user types (issue 11 section 1): worker_class auto
with its reason in the log and WebSocket routing by the detected class, app factories, binds
(ephemeral port, no port, unix socket, inherited fd), --version, venv, alias hints.
Apps: apps/cli_apps.py."""
import asyncio
import re

import pytest
import websockets

from hbtest import http


def test_auto_serves_wsgi_and_leaves_upgrade_to_the_app(server):
    s = server("cli_apps:wsgi_app")
    r = http(s.port, "GET", "/", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                          ("Sec-WebSocket-Version", "13")])
    assert r.status == 200 and r.body == b"wsgi upgrade=websocket"
    log = s.stderr()
    assert re.search(r"Using worker: wsgi \(worker_class = auto: the app is a plain callable of 2 "
                     r"required arguments", log), log


def test_auto_serves_asgi_websocket(server):
    s = server("cli_apps:asgi_app")
    assert http(s.port, "GET", "/").body == b"asgi"

    async def talk():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % s.port) as ws:
            await ws.send("hi")
            return await ws.recv()
    assert asyncio.run(asyncio.wait_for(talk(), 20)) == "echo hi"
    log = s.stderr()
    assert "Using worker: asgi (worker_class = auto: the app is a coroutine function)" in log, log


def test_configured_class_is_logged_as_configured(server):
    s = server("cli_apps:wsgi_app", "-k", "wsgi")
    assert "Using worker: wsgi (configured)" in s.stderr()
