"""The command line a gunicorn or uvicorn user types (issue 11 section 1): worker_class auto
with its reason in the log and WebSocket routing by the detected class, app factories, binds
(ephemeral port, no port, unix socket, inherited fd), --version, venv, alias hints.
Apps: apps/cli_apps.py."""
import asyncio
import re
import signal
import socket
import subprocess

import pytest
import websockets

from hbtest import (APPS, BINARY, HTTPReader, assert_no_sanitizer, http, request_bytes,
                    require_binary, run_binary, server_env, wait_for)


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


# -- binds ---------------------------------------------------------------------------------

LISTEN_LINE = re.compile(r"Listening at: (\S+) \(")


def listening(s, count=1, timeout=15):
    """The addresses of the server's "Listening at" lines, once it logged `count` of them."""
    found = []

    def logged():
        s.assert_alive()
        found[:] = LISTEN_LINE.findall(s.stderr())
        return len(found) >= count
    assert wait_for(logged, timeout), s.describe()
    return found


def listen_sockets(port):
    """TCP sockets in LISTEN state on 127.0.0.1:port (IPv4, /proc/net/tcp)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local == "0100007F:%04X" % port:
                n += 1
    return n


def test_port_zero_is_one_ephemeral_port_for_every_io_thread(server):
    s = server("cli_apps:wsgi_app", "--bind", "127.0.0.1:0", "--workers", "3", bind=False, wait=False)
    (addr,) = listening(s)
    m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", addr)
    assert m, addr
    s.port = int(m.group(1))
    assert s.port != 0
    s.wait_ready()
    # one SO_REUSEPORT group: each io thread's socket listens on the same port
    assert listen_sockets(s.port) == 3
    for _ in range(10):
        assert http(s.port, "GET", "/").status == 200


def test_bind_without_port_logs_the_default_port(server):
    # 8000 is the default port (gunicorn's and uvicorn's); another test run may hold it.
    s = server("cli_apps:wsgi_app", "--bind", "127.0.0.1", bind=False, wait=False)
    if not wait_for(lambda: "Listening at" in s.stderr() or not s.alive(), 15):
        pytest.fail(s.describe())
    if not s.alive() and "Address already in use" in s.stderr():
        pytest.skip("port 8000 is held by another process on this machine")
    assert listening(s) == ["http://127.0.0.1:8000"]
    s.port = 8000
    s.wait_ready()


def test_host_name_bind_logs_the_address(server):
    s = server("cli_apps:wsgi_app", "--host", "localhost", "--port", "0", bind=False, wait=False)
    (addr,) = listening(s)
    assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*", addr), addr


def unix_get(path, target="/"):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(10)
        c.connect(str(path))
        c.sendall(request_bytes("GET", target, [("Connection", "close")]))
        return HTTPReader(c, timeout=10).read_response()


def test_uds_serves_replaces_a_stale_socket_and_removes_it_at_exit(server, tmp_path):
    path = tmp_path / "hb.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file left by a crashed run
    stale.close()
    s = server("cli_apps:wsgi_app", "--uds", str(path), "--workers", "2", bind=False, wait=False)
    assert listening(s) == ["unix:%s" % path]
    assert wait_for(lambda: _unix_ok(path), 15), s.describe()
    for _ in range(5):
        r = unix_get(path)
        assert r.status == 200 and r.body == b"wsgi upgrade="
    assert s.stop() == 0
    assert not path.exists(), "the socket file outlived the server"


def _unix_ok(path):
    try:
        return unix_get(path).status == 200
    except OSError:
        return False


def test_unix_bind_key_and_a_regular_file_in_the_way(server, tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("keep me")
    res = run_binary(["cli_apps:wsgi_app", "--bind", "unix:%s" % path, "--pythonpath", str(APPS)])
    assert res.returncode != 0
    assert "cannot bind unix:%s" % path in res.stderr.decode(), res.stderr.decode()
    assert path.read_text() == "keep me"


def test_fd_listens_on_an_inherited_socket(tmp_path):
    require_binary()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    fd = ls.fileno()
    err = open(tmp_path / "stderr.txt", "wb")
    p = subprocess.Popen([str(BINARY), "cli_apps:wsgi_app", "--fd", str(fd), "--workers", "2",
                          "--pythonpath", str(APPS), "--graceful-timeout", "5"],
                         pass_fds=[fd], env=server_env(), stdout=subprocess.DEVNULL, stderr=err,
                         stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    ls.close()  # the server holds it now
    try:
        def served():
            assert p.poll() is None, (tmp_path / "stderr.txt").read_text()
            try:
                return http(port, "GET", "/").status == 200
            except OSError:
                return False
        assert wait_for(served, 15), (tmp_path / "stderr.txt").read_text()
        log = (tmp_path / "stderr.txt").read_text()
        assert "Listening at: http://127.0.0.1:%d (fd://%d)" % (port, fd) in log, log
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0
        err.close()
    assert_no_sanitizer((tmp_path / "stderr.txt").read_text())


def test_fd_that_is_not_a_socket_is_an_error(tmp_path):
    require_binary()
    with open(tmp_path / "plain", "w") as f:
        fd = f.fileno()
        p = subprocess.run([str(BINARY), "cli_apps:wsgi_app", "--fd", str(fd),
                            "--pythonpath", str(APPS)], pass_fds=[fd], env=server_env(),
                           capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert "cannot use inherited descriptor (not a socket) fd://%d" % fd in p.stderr.decode(), p.stderr


# -- app factories -------------------------------------------------------------------------

@pytest.mark.parametrize("spec,args,body", [
    ("cli_apps:create_app()", [], b"factory x1 pid-env=t"),
    ("cli_apps:create_app('prod', times=3)", [], b"prod x3 pid-env=t"),
    ("cli_apps:create_app", ["--factory"], b"factory x1 pid-env=t"),
    ("cli_apps:Holder.make()", [], b"nested"),
])
def test_factory_forms(server, spec, args, body):
    s = server(spec, *args, env={"CLI_APPS_TAG": "t"})
    assert http(s.port, "GET", "/").body == body


def test_factory_of_an_asgi_app_is_detected_as_asgi(server):
    s = server("cli_apps:create_asgi_app()", "--workers", "2")
    assert http(s.port, "GET", "/").body == b"asgi"
    assert "Using worker: asgi (worker_class = auto" in s.stderr()


@pytest.mark.parametrize("spec,args,message", [
    ("cli_apps:nope", [], "app cli_apps:nope: module 'cli_apps' has no attribute 'nope'"),
    ("cli_apps:Holder.nope()", [], "module 'cli_apps' has no attribute 'Holder.nope'"),
    ("cli_apps:bad_factory()", [], "the factory 'bad_factory' of module 'cli_apps' returned NoneType, not a callable app"),
    ("cli_apps:bad_factory", ["--factory"], "the factory 'bad_factory' of module 'cli_apps' returned NoneType"),
    ("cli_apps:raising_factory()", [], "RuntimeError: the factory failed on purpose"),
    ("cli_apps:create_app(os.environ)", [], "the factory arguments must be literals"),
    ("cli_apps:create_app(", [], "is not an attribute name or a call of one"),
    ("cli_apps:__doc__", [], "'__doc__' in module 'cli_apps' is a str, not callable"),
])
def test_factory_errors_name_module_and_attribute(spec, args, message):
    res = run_binary([spec, "--pythonpath", str(APPS), "--workers", "1"] + args)
    err = res.stderr.decode()
    assert res.returncode != 0 and message in err, err
    assert "cannot import app '%s'" % spec in err, err
