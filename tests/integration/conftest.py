"""pytest fixtures for the hornbeam-uring black-box suite (helpers live in hbtest.py).

Run: /usr/bin/python3 -m pytest tests/integration   (HB_BINARY=build-asan/hornbeam-uring for ASan)
"""
import os
import signal
import sys

import pytest

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__ (the server gets PYTHONDONTWRITEBYTECODE)

from hbtest import ServerFactory

TEST_TIMEOUT = int(os.environ.get("HB_TEST_TIMEOUT", "60"))

# test_py311.py needs the build against Debian's Python 3.11 (FastAPI, pydantic 1, numpy load
# only there): scripts/test.sh runs it alone with HB_PY311=1 and HB_BINARY=build-py311/...
collect_ignore = [] if os.environ.get("HB_PY311") == "1" else ["test_py311.py"]


# -- per-test time guard (no pytest-timeout plugin here) -----------------------------------

class GuardTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_guard(request):
    def on_alarm(signum, frame):
        raise GuardTimeout("test %s ran past %ds" % (request.node.nodeid, TEST_TIMEOUT))

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def server(tmp_path):
    """Factory: server(app="module:callable", *cli_args, env=None) -> Server (ready).

    Adds --bind 127.0.0.1:<free port>, --pythonpath apps/ and Debian's dist-packages, and
    --workers 1 / --graceful-timeout 5 unless given. At teardown: SIGTERM, then asserts the
    exit status is 0 and stderr has no sanitizer report."""
    f = ServerFactory(tmp_path / "servers")
    yield f
    f.finish()


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory):
    f = ServerFactory(tmp_path_factory.mktemp("modservers"))
    yield f
    f.finish()


