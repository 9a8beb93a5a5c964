"""WebSocket echo as a raw ASGI app: the same code under hornbeam-uring and uvicorn."""
from asgi_common import websocket_app


async def echo(receive, send):
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        if m.get("text") is not None:
            await send({"type": "websocket.send", "text": m["text"]})
        else:
            await send({"type": "websocket.send", "bytes": m["bytes"]})


app = websocket_app(echo)
