"""Hello, World as a raw ASGI 3 callable, with a request-info page and a body echo.

    hornbeam-uring app:application --worker-class asgi --pythonpath examples/hello_asgi

Routes: `/` (text), `/info` (what the scope says), `/echo` (POST: the body back, read as a
stream of http.request messages).
"""


async def _reply(send, status, body, ctype=b"text/plain; charset=utf-8"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]  # startup / shutdown
            await send({"type": "lifespan.%s.complete" % kind})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/":
        await _reply(send, 200, b"Hello, World!")
    elif path == "/info":
        host, port = scope["server"] or ("unix", 0)
        lines = ["method: %s" % method, "path: %s" % path,
                 "query: %s" % scope["query_string"].decode("latin-1"),
                 "server: %s:%s" % (host, port), "asgi: %s" % scope["asgi"]["version"],
                 "http: %s" % scope["http_version"]]
        await _reply(send, 200, ("\n".join(lines) + "\n").encode())
    elif path == "/echo" and method == "POST":
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await _reply(send, 200, bytes(body), b"application/octet-stream")
    else:
        await _reply(send, 404, b"Not Found\n")
