"""Hello, World as a plain WSGI callable.

    hornbeam-uring app:application --pythonpath examples/hello_wsgi --bind 127.0.0.1:8000
"""

BODY = b"Hello, World!"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
