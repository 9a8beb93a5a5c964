"""What many ASGI test apps share (on the test pythonpath, so apps written to a temporary
directory import it too): the lifespan protocol with nothing to set up."""


async def lifespan(receive, send):
    """Completes lifespan.startup and lifespan.shutdown; returns after the shutdown."""
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
