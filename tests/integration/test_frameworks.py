"""Real frameworks (Debian's Flask and Django) under the server, driven with requests."""
import requests

from hbtest import EXAMPLES


def test_flask_app(server):
    s = server("app:app", pythonpath=[EXAMPLES / "flask_app"])
    base = "http://127.0.0.1:%d" % s.port
    with requests.Session() as sess:
        r = sess.get(base + "/", timeout=10)
        assert r.status_code == 200 and "Hello from Flask" in r.text
        r = sess.get(base + "/items", timeout=10)
        assert r.status_code == 200
        assert [i["name"] for i in r.json()["items"]] == ["hornbeam", "uring"]
        r = sess.get(base + "/items/2", timeout=10)
        assert r.json() == {"id": 2, "name": "uring"}
        r = sess.get(base + "/items/99", timeout=10)
        assert r.status_code == 404 and r.json()["error"] == "not found"
        r = sess.post(base + "/echo", json={"a": [1, 2, 3], "b": "\u00e9"}, timeout=10)
        assert r.status_code == 200 and r.json()["received"] == {"a": [1, 2, 3], "b": "\u00e9"}
        r = sess.post(base + "/form", data={"name": "bob", "x": "1"}, timeout=10)
        assert r.status_code == 200 and r.json() == {"greeting": "hello bob", "fields": ["name", "x"]}
        r = sess.get(base + "/info?q=1", timeout=10)
        assert r.json()["args"] == {"q": "1"} and r.json()["remote_addr"] == "127.0.0.1"
        r = sess.get(base + "/missing", timeout=10)
        assert r.status_code == 404


def test_flask_app_root_path(server):
    s = server("app:app", "--root-path", "/flask", pythonpath=[EXAMPLES / "flask_app"])
    r = requests.get("http://127.0.0.1:%d/flask/info" % s.port, timeout=10)
    assert r.status_code == 200
    assert r.json()["script_root"] == "/flask" and r.json()["path"] == "/info"


def test_django_app(server):
    s = server("djsite.wsgi:application", pythonpath=[EXAMPLES / "django_app"])
    base = "http://127.0.0.1:%d" % s.port
    with requests.Session() as sess:
        r = sess.get(base + "/api/?x=1", timeout=10)
        assert r.status_code == 200, r.text[:500]
        assert r.json() == {"framework": "django", "method": "GET", "path": "/api/", "query": {"x": "1"}}
        r = sess.get(base + "/hello/world/", timeout=10)
        assert r.status_code == 200
        assert "<h1>Hello, world!</h1>" in r.text and "<li>three</li>" in r.text
        r = sess.post(base + "/echo/", data={"k": "v"}, timeout=10)
        assert r.status_code == 200 and r.json()["form"] == {"k": "v"}
        r = sess.get(base + "/nope/", timeout=10)
        assert r.status_code == 404
    # ALLOWED_HOSTS is enforced (DEBUG off): a foreign Host gets 400
    r = requests.get(base + "/api/", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 400
