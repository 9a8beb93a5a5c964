"""The command line a gunicorn or uvicorn user types (issue 11 section 1): worker_class auto
with its reason in the log and WebSocket routing by the detected class, app factories, binds
(ephemeral port, no port, unix socket, inherited fd), --version, venv, alias hints.
Apps: apps/cli_apps.py."""
import asyncio
import os
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
    # 8000 is the default port (gunicorn's and uvicorn's); no other test binds it.
    s = server("cli_apps:wsgi_app", "--bind", "127.0.0.1", bind=False, wait=False)
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


# -- versions and virtualenvs ----------------------------------------------------------------

VERSION_RE = re.compile(r"^Python (\d+)\.(\d+)\.\d+\S* \(prefix (/\S+)\)$", re.M)


def embedded_python():
    """(major, minor, prefix) of the Python the binary embeds, from --version."""
    res = run_binary(["--version"], timeout=10)
    m = VERSION_RE.search(res.stdout.decode())
    assert m, res.stdout
    return int(m.group(1)), int(m.group(2)), m.group(3)


def test_version_names_python_and_the_libraries():
    res = run_binary(["--version"], timeout=10)
    out = res.stdout.decode()
    assert res.returncode == 0, out
    lines = out.splitlines()
    assert re.fullmatch(r"hornbeam-uring \d+\.\d+\.\d+", lines[0]), out
    major, minor, prefix = embedded_python()
    assert os.path.isdir(prefix), prefix
    assert re.fullmatch(r"liburing \d+\.\d+(\.\d+)?, llhttp \d+\.\d+\.\d+, nghttp2 \d+\.\d+\.\d+, "
                        r"wolfSSL \d+\.\d+\.\d+", lines[2]), out


def test_startup_log_names_python_and_the_libraries(server):
    s = server("cli_apps:wsgi_app")
    major, minor, prefix = embedded_python()
    assert re.search(r"Embedded Python %d\.%d\.\d+\S* \(prefix %s\); liburing " % (major, minor, re.escape(prefix)),
                     s.stderr()), s.stderr()


def make_venv(python, where):
    subprocess.run([python, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60,
                   capture_output=True)
    return where


@pytest.fixture(scope="module")
def embedded_venv(tmp_path_factory):
    """A venv made by the embedded Python's own interpreter, holding a module nothing else has."""
    major, minor, prefix = embedded_python()
    python = os.path.join(prefix, "bin", "python%d.%d" % (major, minor))
    if not os.access(python, os.X_OK):
        pytest.fail("the embedded Python's interpreter %s is missing" % python)
    v = make_venv(python, tmp_path_factory.mktemp("venv") / "v")
    site = v / "lib" / ("python%d.%d" % (major, minor)) / "site-packages"
    (site / "venv_marker.py").write_text("import os\nVALUE = 'from-venv'\nSITE = os.path.dirname(__file__)\n")
    return v


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory):
    """A venv of Debian's python3 (3.11), not the embedded version."""
    v = make_venv("/usr/bin/python3", tmp_path_factory.mktemp("venv311") / "v")
    return v


def test_venv_key_puts_its_site_packages_first(server, embedded_venv):
    s = server("cli_apps:venv_app", "--venv", str(embedded_venv))
    r = http(s.port, "GET", "/")
    value, index = r.body.decode().split()
    assert value == "from-venv"
    assert "venv site-packages %s" % embedded_venv in s.stderr()


def test_activated_venv_is_used(server, embedded_venv):
    s = server("cli_apps:venv_app", env={"VIRTUAL_ENV": str(embedded_venv)})
    assert http(s.port, "GET", "/").body.startswith(b"from-venv ")


@pytest.mark.parametrize("how", ["key", "activated"])
def test_venv_of_another_python_is_an_error(other_venv, how):
    major, minor, _ = embedded_python()
    pyver = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert pyver != "%d.%d" % (major, minor), "this test needs a Python other than the embedded one"
    args = ["cli_apps:wsgi_app", "--pythonpath", str(APPS)]
    env = None
    if how == "key":
        args += ["--venv", str(other_venv)]
    else:
        env = {"VIRTUAL_ENV": str(other_venv)}
    res = run_binary(args, env=env)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    assert ("%s: the virtualenv '%s' is for Python %s (version = %s" %
            ("venv" if how == "key" else "VIRTUAL_ENV", other_venv, pyver, pyver)) in err, err
    assert "but hornbeam-uring embeds Python %d.%d" % (major, minor) in err, err


def test_venv_that_is_not_one(tmp_path):
    res = run_binary(["cli_apps:wsgi_app", "--venv", str(tmp_path)])
    assert res.returncode == 2
    assert "venv: '%s' is not a virtualenv (no pyvenv.cfg" % tmp_path in res.stderr.decode()


# -- aliases -----------------------------------------------------------------------------------

def help_aliases():
    """{alias option: the key option it stands for} from --help ("alias of --key ...", and
    --host/--port, which stand for --bind)."""
    out = run_binary(["--help"], timeout=10).stdout.decode()
    found = {}
    for m in re.finditer(r"^      --([a-z0-9-]+)[^\n]*\n\s+alias(?: of|, with --[a-z-]+, of one)? --([a-z0-9-]+)",
                         out, re.M):
        found[m.group(1)] = m.group(2)
    return found


def misspelled(name):
    if len(name) < 4:
        return name + "x"
    i = next(i for i in range(1, len(name) - 1) if name[i] != name[i + 1])
    return name[:i] + name[i + 1] + name[i] + name[i + 2:]


def test_help_lists_the_aliases():
    aliases = help_aliases()
    for a in ("keep-alive", "timeout-keep-alive", "access-logfile", "uds", "fd", "host", "port"):
        assert a in aliases, aliases


def test_every_alias_gets_a_did_you_mean():
    aliases = help_aliases()
    bad = []
    for alias, key in sorted(aliases.items()):
        miss = misspelled(alias)
        res = run_binary(["a:b", "--" + miss, "1"], timeout=10)
        err = res.stderr.decode()
        m = re.search(r"unknown option '--%s' \(did you mean '--([a-z0-9-]+)'\?\)" % re.escape(miss), err)
        if res.returncode != 2 or not m or m.group(1) not in (alias, key):
            bad.append("--%s (for --%s): %s" % (miss, alias, err.strip()))
    assert not bad, "\n".join(bad)


def test_worker_class_short_and_long_spelling():
    for args in (["-k", "asgi"], ["--worker-class", "asgi"], ["--worker-class=asgi"], ["-kasgi"]):
        res = run_binary(["cli_apps:asgi_app", "--print-config"] + args, timeout=10)
        assert res.returncode == 0 and 'worker_class = "asgi"  # cli' in res.stdout.decode(), (args, res.stdout)
    res = run_binary(["a:b", "-k", "gevent"], timeout=10)
    assert res.returncode == 2
    assert "--worker-class: expected one of wsgi, asgi, auto, got 'gevent'" in res.stderr.decode()
    res = run_binary(["a:b", "--worker-clas", "asgi"], timeout=10)
    assert "did you mean '--worker-class'" in res.stderr.decode()
