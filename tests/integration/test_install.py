"""Installing: `cmake --install` puts a tree under a prefix that runs as an unprivileged user, from
any directory, after being moved; `pip install ./python` gives a virtualenv hornbeam_erlang and
hornbeam_ml with their in-process fallbacks (plain Python and gunicorn).

The install comes from the build directory of the binary under test (HB_BINARY's directory). The
prefix lives in a fresh /tmp directory of mode 0755, since pytest's own tmp_path is private to
root and `nobody` could not enter it."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hbtest import BINARY, REPO, assert_no_sanitizer, free_port, http, require_binary, server_env

APP = '''
import sys
import hornbeam_erlang, hornbeam_ml

def application(environ, start_response):
    hits = hornbeam_erlang.state_incr("installed:hits")
    cached = hornbeam_ml.cached_inference(len, "four")
    body = "native=%s hits=%d cached=%d uid=%d prefix=%s api=%s\\n" % (
        hornbeam_erlang.NATIVE, hits, cached, __import__("os").getuid(), sys.prefix,
        hornbeam_erlang.__file__)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
'''


@pytest.fixture
def public_tmp():
    d = Path(tempfile.mkdtemp(prefix="hb-install-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _install(prefix):
    require_binary()
    res = subprocess.run(["cmake", "--install", str(BINARY.parent), "--prefix", str(prefix)],
                         capture_output=True, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()[-4000:]
    return prefix / "bin" / "hornbeam-uring"


def _serve_as(argv, cwd, port, tries=3):
    """Runs argv (the server) in cwd, GETs / and stops it. Returns (status, body, stderr)."""
    env = server_env()
    env.pop("HB_BINARY", None)
    env["HOME"] = "/nonexistent"
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            status, body = None, b""
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = http(port, "GET", "/", timeout=5)
                    status, body = r.status, r.body
                    break
                except OSError:
                    time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    assert_no_sanitizer(text)
    assert status is not None, "the installed server never answered (exit %s):\n%s" % (proc.returncode, text[-4000:])
    assert proc.returncode == 0, "exit status %s:\n%s" % (proc.returncode, text[-4000:])
    return status, body.decode(), text


def _app_dir(root):
    apps = root / "app"
    apps.mkdir()
    (apps / "installed_app.py").write_text(APP)
    os.chmod(apps, 0o755)
    os.chmod(apps / "installed_app.py", 0o644)
    return apps


def _server_argv(binary, apps, port):
    return [str(binary), "installed_app:application", "--pythonpath", str(apps),
            "--bind", "127.0.0.1:%d" % port, "--workers", "2", "--graceful-timeout", "5"]


def test_install_layout_and_rpath(public_tmp):
    binary = _install(public_tmp / "prefix")
    prefix = public_tmp / "prefix"
    for rel in ("share/hornbeam-uring/python/hornbeam_erlang.py", "share/hornbeam-uring/python/hornbeam_ml.py",
                "share/hornbeam-uring/python/hornbeam_erlang.pyi", "share/hornbeam-uring/python/_hornbeam.pyi",
                "share/doc/hornbeam-uring/README.md", "share/doc/hornbeam-uring/docs/configuration.md",
                "share/doc/hornbeam-uring/examples/hello_wsgi/app.py"):
        assert (prefix / rel).is_file(), rel
    dyn = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True).stdout
    runpath = [l for l in dyn.splitlines() if "RPATH" in l or "RUNPATH" in l]
    assert runpath and all("$ORIGIN" in l for l in runpath), \
        "the installed binary must find libpython relative to itself, not in the build's Python: %s" % runpath
    assert "/root" not in "".join(runpath)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    lib = [l for l in ldd.splitlines() if "libpython" in l]
    assert lib and str(prefix) in lib[0], "libpython resolved outside the prefix:\n%s" % ldd


def test_installed_binary_runs_moved_from_another_directory(public_tmp):
    """The tree is moved after install (nothing in it names where it was built or installed)."""
    _install(public_tmp / "staged")
    os.rename(public_tmp / "staged", public_tmp / "moved")
    binary = public_tmp / "moved" / "bin" / "hornbeam-uring"
    apps = _app_dir(public_tmp)
    port = free_port()
    status, body, _ = _serve_as(_server_argv(binary, apps, port), "/", port)
    assert status == 200, body
    assert "native=True" in body, body
    assert "cached=4" in body, body
    assert "api=%s/moved/share/hornbeam-uring/python/hornbeam_erlang.py" % public_tmp in body, body
    assert "prefix=%s/moved/lib/hornbeam-uring/python" % public_tmp in body, body


def test_installed_binary_runs_as_nobody(public_tmp):
    assert os.geteuid() == 0, ("running the server as another user needs root (setpriv): run the suite as "
                               "root, as CI does (this is uid %d)" % os.geteuid())
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    binary = _install(public_tmp / "prefix")
    apps = _app_dir(public_tmp)
    work = public_tmp / "elsewhere"
    work.mkdir()
    os.chmod(work, 0o555)
    port = free_port()
    argv = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + _server_argv(binary, apps, port)
    status, body, text = _serve_as(argv, work, port)
    assert status == 200, body
    assert "uid=65534" in body or "uid=%d" % _uid("nobody") in body, body
    assert "native=True" in body and "cached=4" in body, body
    assert "/root" not in body, "the server used something under /root:\n" + body
    assert "Permission denied" not in text, text


def _uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


# -- pip install ./python ------------------------------------------------------------------

def _venv(tmp_path):
    venv = tmp_path / "venv"
    res = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    src = tmp_path / "src"
    shutil.copytree(REPO / "python", src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-build-isolation", "--no-deps",
                          "--no-index", str(src)], capture_output=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, (res.stdout + res.stderr).decode()[-4000:]
    return venv


FALLBACK = r'''
import asyncio, sys
import hornbeam_erlang as h, hornbeam_ml as m
assert h.__file__.startswith(sys.prefix), (h.__file__, sys.prefix)
assert h.NATIVE is False
assert h.state_incr("n") == 1 and h.state_incr("n", 4) == 5 and h.state_decr("n") == 4
h.state_set("k", {"a": [1, 2.5, b"x", None]})
v = h.state_get("k"); v["a"].append(9); assert h.state_get("k") == {"a": [1, 2.5, b"x", None]}
assert h.state_keys("k") == ["k"] and h.state_delete("k") and h.state_get("k", 7) == 7
try:
    h.state_set("bad", object())
except TypeError:
    pass
else:
    raise AssertionError("an object() value was accepted")
sub = h.subscribe("room:*", queue_size=2)
assert h.publish("room:a", "one") == 1
h.publish("room:b", "two"); h.publish("room:c", "three")
assert sub.dropped == 1 and sub.get(0) == "two" and sub.get_nowait() == "three"
async def later():
    s = h.subscribe("t")
    asyncio.get_running_loop().call_later(0.05, h.publish, "t", {"x": 1})
    return await s.aget(timeout=5)
assert asyncio.run(later()) == {"x": 1}
h.register_function("add", lambda a, b: a + b)
assert h.call("add", 2, 3) == 5 and "add" in h.registered_functions()
try:
    h.call("nope")
except h.FunctionNotRegistered:
    pass
else:
    raise AssertionError("call of an unregistered name did not raise")
calls = []
def model(x):
    calls.append(x)
    return [len(x), 0.5]
assert m.cached_inference(model, "abc") == [3, 0.5] and m.cached_inference(model, "abc") == [3, 0.5]
assert calls == ["abc"], calls
assert m.cache_stats()["hits"] == 1
print("fallback ok")
'''

GUNICORN_APP = '''
import hornbeam_erlang
def application(environ, start_response):
    n = hornbeam_erlang.state_incr("g")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("native=%s n=%d api=%s" % (hornbeam_erlang.NATIVE, n, hornbeam_erlang.__file__)).encode()]
'''


def test_pip_installed_package_falls_back_in_plain_python(tmp_path):
    venv = _venv(tmp_path)
    res = subprocess.run([str(venv / "bin" / "python"), "-c", FALLBACK], capture_output=True, timeout=60,
                         cwd=str(tmp_path), env={"PATH": os.environ.get("PATH", "/usr/bin")})
    assert res.returncode == 0, (res.stdout + res.stderr).decode()
    assert b"fallback ok" in res.stdout


def test_pip_installed_package_under_gunicorn(tmp_path):
    venv = _venv(tmp_path)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import gunicorn"], capture_output=True)
    assert probe.returncode == 0, "gunicorn is not installed (Debian's gunicorn: scripts/setup.sh installs it)"
    (tmp_path / "gapp.py").write_text(GUNICORN_APP)
    port = free_port()
    proc = subprocess.Popen([str(venv / "bin" / "python"), "-m", "gunicorn", "-b", "127.0.0.1:%d" % port,
                             "-w", "1", "gapp:application"], cwd=str(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env={"PATH": os.environ.get("PATH", "/usr/bin")})
    try:
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = http(port, "GET", "/", timeout=5)
                status, body = r.status, r.body
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, "gunicorn did not answer (exit %s)" % proc.poll()
        assert status == 200
        assert body.startswith(b"native=False n=1 api=%s" % str(venv).encode()), body
    finally:
        proc.terminate()
        proc.wait(timeout=30)
