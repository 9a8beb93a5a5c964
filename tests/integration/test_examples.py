"""Each example's README command works as written, and the WebSocket chat chats across workers.

The command is read from the README itself (the first `hornbeam-uring ...` line of a code block,
with `\\` continuations), so README and test cannot disagree. The only changes made to it: the
program name becomes the binary under test, and the port of `--bind` (or of the default bind, when
the command has none) becomes a free one; the README's `curl` lines get the same port. Each command
runs from the repository root, as the READMEs say, with no PYTHONPATH and no HORNBEAM_* variables.
"""
import asyncio
import json
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import websockets

from hbtest import (BINARY, EXAMPLES, REPO, assert_no_sanitizer, free_port, readme_code_lines,
                    require_binary, server_env)

# What each example must answer (path, substring of the body) once its README command runs.
PROBES = {
    "hello_wsgi": [("/", "Hello, World!")],
    "hello_asgi": [("/", "Hello, World!"), ("/info", "method: GET")],
    "flask_app": [("/", "Hello from Flask"), ("/items", "[")],
    "django_app": [("/api/", '"framework": "django"'), ("/hello/ann/", "ann")],
    "starlette_app": [("/", "Hello from Starlette"), ("/items/1", '"hornbeam"')],
    "websocket_chat": [("/health", '"ok"'), ("/", "new WebSocket")],
    "embedding_service": [("/metrics", '"cache"')],
}


def readme_command(name):
    lines = [l for l in readme_code_lines(EXAMPLES / name / "README.md") if l.startswith("hornbeam-uring ")]
    assert lines, "examples/%s/README.md has no `hornbeam-uring ...` command" % name
    return lines[0]


def readme_curls(name):
    return [l for l in readme_code_lines(EXAMPLES / name / "README.md") if l.startswith("curl ")]


def _with_port(words, port):
    """The command with its bind's port replaced (or a bind on that port added)."""
    words = list(words)
    for i, w in enumerate(words):
        if w in ("--bind", "-b") and i + 1 < len(words):
            host = words[i + 1].rsplit(":", 1)[0]
            words[i + 1] = "%s:%d" % (host, port)
            return words
    return words + ["--bind", "127.0.0.1:%d" % port]


class ReadmeServer:
    def __init__(self, name):
        require_binary()
        self.name = name
        self.command = readme_command(name)
        self.port = free_port()
        words = shlex.split(self.command)
        assert words[0] == "hornbeam-uring"
        self.argv = [str(BINARY)] + _with_port(words[1:], self.port)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, cwd=str(REPO), env=server_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                pytest.fail("README command of %s exited with %s:\n  %s\n%s" % (
                    name, self.proc.returncode, self.command, self.stderr()[-4000:]), pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("README command of %s never listened:\n  %s\n%s" % (
                        name, self.command, self.stderr()[-4000:]), pytrace=False)
                time.sleep(0.1)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def get(self, path):
        import requests
        r = requests.get("http://127.0.0.1:%d%s" % (self.port, path), timeout=20)
        return r.status_code, r.text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("%s did not stop on SIGTERM:\n%s" % (self.name, self.stderr()[-4000:]))
        text = self.stderr()
        self.err.close()
        assert_no_sanitizer(text, self.name)
        assert rc == 0, "%s exited with %s:\n%s" % (self.name, rc, text[-4000:])


@pytest.fixture
def readme_server():
    started = []

    def start(name):
        s = ReadmeServer(name)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def test_every_example_has_a_readme_command():
    dirs = sorted(p.name for p in EXAMPLES.iterdir() if (p / "app.py").exists() or (p / "manage.py").exists())
    assert sorted(PROBES) == dirs, "examples and the probes of this test differ: %s vs %s" % (dirs, sorted(PROBES))
    for d in dirs:
        readme_command(d)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_readme_command_serves(readme_server, name):
    s = readme_server(name)
    for path, needle in PROBES[name]:
        status, body = s.get(path)
        assert status == 200 and needle in body, "%s GET %s -> %s %r\ncommand: %s" % (
            name, path, status, body[:300], s.command)
    for line in readme_curls(name):
        line = re.sub(r"(127\.0\.0\.1|localhost):8000", "127.0.0.1:%d" % s.port, line)
        res = subprocess.run(shlex.split(line, comments=True) + ["--fail", "--max-time", "20"], capture_output=True,
                             timeout=30)
        assert res.returncode == 0 and res.stdout.strip(), "%s: `%s` failed (%s):\n%s" % (
            name, line, res.returncode, (res.stdout + res.stderr).decode()[-2000:])


# -- the chat, across workers -------------------------------------------------------------

async def _open_on_two_workers(port, room, tries=24):
    """Opens connections until two are served by different worker interpreters."""
    seen = {}
    spare = []
    for _ in range(tries):
        ws = await websockets.connect("ws://127.0.0.1:%d/chat/%s" % (port, room))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "hello" and hello["room"] == room, hello
        if hello["worker"] not in seen:
            seen[hello["worker"]] = ws
            if len(seen) == 2:
                break
        else:
            spare.append(ws)
    for ws in spare:
        await ws.close()
    assert len(seen) == 2, "%d connections all landed on worker(s) %s" % (tries, list(seen))
    return list(seen.items())


async def _next(ws, kind):
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg["type"] == kind:
            return msg


async def _expect(ws, want):
    """Reads until the message `want` arrives (10 s at most per message); returns what came before."""
    before = []
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg == want:
            return before
        before.append(msg)


def test_chat_reaches_every_member_across_workers(readme_server):
    s = readme_server("websocket_chat")
    assert "--workers 2" in s.command

    async def go():
        (wa, alice), (wb, bob) = await _open_on_two_workers(s.port, "lobby")
        assert wa != wb
        other = await websockets.connect("ws://127.0.0.1:%d/chat/elsewhere" % s.port)
        await _next(other, "hello")
        await alice.send(json.dumps({"type": "join", "username": "alice"}))
        joined_a = {"type": "system", "text": "alice joined #lobby"}
        assert await _expect(bob, joined_a) == []          # from the other worker
        assert await _expect(alice, joined_a) == []        # and back to the sender
        await bob.send(json.dumps({"type": "join", "username": "bob"}))
        joined_b = {"type": "system", "text": "bob joined #lobby"}
        assert await _expect(alice, joined_b) == []
        assert await _expect(bob, joined_b) == []
        await alice.send(json.dumps({"type": "message", "text": "hi bob"}))
        hi_bob = {"type": "message", "username": "alice", "text": "hi bob"}
        assert await _expect(bob, hi_bob) == []
        assert await _expect(alice, hi_bob) == []
        await bob.send(json.dumps({"type": "message", "text": "hi alice"}))
        hi_alice = {"type": "message", "username": "bob", "text": "hi alice"}
        assert await _expect(alice, hi_alice) == []
        assert await _expect(bob, hi_alice) == []
        await bob.send("not json")
        assert await _expect(bob, {"type": "error", "text": "invalid JSON"}) == []
        await bob.close()
        assert await _expect(alice, {"type": "system", "text": "bob left #lobby"}) == []
        await alice.close()
        # The other room heard none of it: its first message is its own.
        await other.send(json.dumps({"type": "message", "text": "anyone?"}))
        assert await _expect(other, {"type": "message", "username": "anonymous", "text": "anyone?"}) == []
        await other.close()
    asyncio.run(asyncio.wait_for(go(), 40))
    status, body = s.get("/rooms/lobby")
    room = json.loads(body)
    assert [m["text"] for m in room["recent_messages"]][-2:] == ["hi bob", "hi alice"]
