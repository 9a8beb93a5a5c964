"""What the raw ASGI perf apps (raw_asgi, echo_asgi, broadcast_asgi, hello_asgi) share, the same
under hornbeam-uring, uvicorn and hypercorn: the lifespan protocol with nothing to set up, a
whole response with its Content-Length, and the frame of a WebSocket app (websocket_app)."""


async def lifespan(receive, send):
    """Completes each lifespan event until the shutdown one."""
    while True:
        m = await receive()
        await send({"type": m["type"] + ".complete"})
        if m["type"] == "lifespan.shutdown":
            return


def websocket_app(on_open):
    """An app whose WebSockets are accepted, then served by on_open(receive, send); lifespan
    as above, and any HTTP request answers "ok" (the harness's probe)."""
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        if scope["type"] == "http":
            return await reply(send, b"ok")
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await on_open(receive, send)
    return app


async def reply(send, body, ctype=b"text/plain", status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
