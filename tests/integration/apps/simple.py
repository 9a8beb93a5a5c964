"""A minimal hello app (also used for lifecycle and config tests)."""


def app(environ, start_response):
    body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


not_callable = 42
