"""ASGI websocket scope and messages with the `websockets` client: echo (text, 1 MiB binary),
subprotocols, accept headers, app close codes, denial (403 and websocket.http.response),
errors before/after accept, ping. Apps: apps/asgi_apps.py (ws_app)."""
import asyncio
import json
import os

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from hbtest import RssSampler, read_file, wait_for


@pytest.fixture(scope="module")
def wsrv(module_server_factory, tmp_path_factory):
    d = tmp_path_factory.mktemp("asgi_ws")
    log = d / "ws.txt"
    s = module_server_factory("asgi_apps:app", "--worker-class", "asgi", "--workers", "1",
                              env={"HB_DISCONNECT_LOG": str(log)})
    s.dlog = log
    return s


@pytest.fixture
def srv(wsrv):
    wsrv.assert_alive()
    yield wsrv
    wsrv.assert_alive()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def uri(srv, path):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


def test_echo_text(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/echo")) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send("h\u00e9llo \U0001F600")
            assert await ws.recv() == "h\u00e9llo \U0001F600"
    run(go())


def test_echo_binary_1mib(srv):
    payload = os.urandom(1 << 20)

    async def go():
        async with websockets.connect(uri(srv, "/ws/echo"), max_size=4 << 20) as ws:
            await ws.send(payload)
            got = await ws.recv()
            assert isinstance(got, bytes) and got == payload
    run(go())


@pytest.mark.parametrize("compression", ["deflate", None])
def test_many_messages(srv, compression):
    async def go():
        async with websockets.connect(uri(srv, "/ws/echo"), compression=compression) as ws:
            for i in range(200):
                await ws.send("m%d" % i)
            for i in range(200):
                assert await ws.recv() == "m%d" % i
    run(go())


def test_ping(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/echo")) as ws:
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
    run(go())


def test_scope_websocket(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/scope?a=1"), subprotocols=["chat", "superchat"]) as ws:
            return json.loads(await ws.recv()), ws.subprotocol, ws.response_headers
    sc, sub, headers = run(go())
    assert sc["type"] == "websocket"
    assert sc["scheme"] == "ws"
    assert sc["path"] == "/ws/scope"
    assert sc["query_string"] == "a=1"
    assert sc["subprotocols"] == ["chat", "superchat"]
    assert sc["asgi"]["version"] == "3.0"
    assert "method" not in sc
    assert any(n == "sec-websocket-key" for n, _ in sc["headers"])
    assert sub == "chat"
    assert headers.get("x-ws") == "yes"


def test_no_subprotocol(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/echo")) as ws:
            return ws.subprotocol
    assert run(go()) is None


def test_app_close_code(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/close")) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason
    code, reason = run(go())
    assert code == 4001
    assert reason == "app says bye"


def test_close_before_accept_is_403(srv):
    async def go():
        with pytest.raises(InvalidStatusCode) as ei:
            async with websockets.connect(uri(srv, "/ws/deny")):
                pass
        return ei.value.status_code
    assert run(go()) == 403


def test_http_response_denial(srv):
    async def go():
        with pytest.raises(InvalidStatusCode) as ei:
            async with websockets.connect(uri(srv, "/ws/deny-http")):
                pass
        return ei.value.status_code
    assert run(go()) == 401


def test_exception_before_accept_is_500(srv):
    async def go():
        with pytest.raises(InvalidStatusCode) as ei:
            async with websockets.connect(uri(srv, "/ws/raise-before")):
                pass
        return ei.value.status_code
    assert run(go()) == 500


def test_exception_after_accept_is_1011(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/raise")) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code
    assert run(go()) == 1011


def test_text_must_be_str(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/bad-text")) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code
    assert run(go()) == 1011


def test_client_close_delivers_disconnect_code(srv):
    async def go():
        async with websockets.connect(uri(srv, "/ws/echo")) as ws:
            await ws.send("x")
            await ws.recv()
            await ws.close(code=4321, reason="client done")
    run(go())
    assert wait_for(lambda: "ws-disconnect 4321" in read_file(srv.dlog), 5), read_file(srv.dlog)


def test_many_concurrent_sockets(srv):
    async def one(i):
        async with websockets.connect(uri(srv, "/ws/echo")) as ws:
            for k in range(5):
                await ws.send("%d-%d" % (i, k))
                assert await ws.recv() == "%d-%d" % (i, k)

    async def go():
        await asyncio.gather(*(one(i) for i in range(50)))
    run(go())


def test_send_waits_for_a_slow_reader(srv):
    """200 x 1 MiB to a client that does not read: send() waits, memory stays bounded."""
    async def go():
        async with websockets.connect(uri(srv, "/ws/flood?200"), max_size=2 << 20, max_queue=1,
                                      compression=None) as ws:
            with RssSampler(srv) as rss:
                await asyncio.sleep(1.5)
            got = 0
            async for _ in ws:
                got += 1
            return rss.growth_mb(), got
    growth, got = run(go())
    assert got == 200
    assert growth < 60, "RSS grew %.1f MiB while the client did not read" % growth


def test_shutdown_closes_open_sockets(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--graceful-timeout", "3")

    async def go():
        async with websockets.connect(uri(s, "/ws/echo")) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            s.signal(__import__("signal").SIGTERM)
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            return ws.close_code
    code = run(go())
    assert code in (1001, 1012), code
    assert s.wait_exit(10) == 0, s.describe()
