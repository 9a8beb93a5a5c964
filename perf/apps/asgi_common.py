"""What the raw ASGI perf apps (raw_asgi, echo_asgi, broadcast_asgi, hello_asgi) share, the same
under hornbeam-uring, uvicorn and hypercorn: the lifespan protocol with nothing to set up, and a
whole response with its Content-Length."""


async def lifespan(receive, send):
    """Completes each lifespan event until the shutdown one."""
    while True:
        m = await receive()
        await send({"type": m["type"] + ".complete"})
        if m["type"] == "lifespan.shutdown":
            return


async def reply(send, body, ctype=b"text/plain", status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
