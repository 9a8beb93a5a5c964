"""A Starlette app (Debian's python3-starlette) for tests/integration/test_asgi_starlette.py."""
import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute


@contextlib.asynccontextmanager
async def lifespan(app):
    app.state.greeting = "hello from lifespan"
    yield


async def homepage(request):
    return PlainTextResponse("Hello, Starlette!")


async def item(request):
    return JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q"),
                         "greeting": request.app.state.greeting})


async def echo_json(request):
    data = await request.json()
    return JSONResponse({"got": data, "len": len(await request.body())})


async def stream(request):
    async def gen():
        for i in range(5):
            yield ("line %d\n" % i).encode()
            await asyncio.sleep(0.01)
    return StreamingResponse(gen(), media_type="text/plain")


async def ws_echo(websocket):
    await websocket.accept()
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await websocket.send_text(msg["text"])
            else:
                await websocket.send_bytes(msg["bytes"])
    finally:
        pass


app = Starlette(routes=[
    Route("/", homepage),
    Route("/items/{item_id:int}", item),
    Route("/json", echo_json, methods=["POST"]),
    Route("/stream", stream),
    WebSocketRoute("/ws", ws_echo),
], lifespan=lifespan)
