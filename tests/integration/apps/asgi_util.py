"""What many ASGI test apps share (on the test pythonpath, so apps written to a temporary
directory import it too): the lifespan protocol with nothing to set up, and an app made of an
HTTP and a WebSocket handler."""


async def lifespan(receive, send):
    """Completes lifespan.startup and lifespan.shutdown; returns after the shutdown."""
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def asgi_app(http, websocket):
    """An ASGI app: lifespan answered by lifespan(), WebSocket scopes handed to websocket and the
    rest to http (each called with scope, receive, send)."""
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "websocket":
            await websocket(scope, receive, send)
        else:
            await http(scope, receive, send)
    return app
