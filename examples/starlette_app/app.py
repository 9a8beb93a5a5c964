"""A Starlette app: routing, JSON, a streaming response, a WebSocket route and lifespan state.

    hornbeam-uring app:app --worker-class asgi --pythonpath examples/starlette_app \
        --pythonpath /usr/lib/python3/dist-packages      # Debian's python3-starlette
"""
import asyncio
import contextlib
import time

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect


@contextlib.asynccontextmanager
async def lifespan(app):
    # runs in every worker before it takes requests; app.state is that worker's
    app.state.started_at = time.time()
    app.state.items = {1: {"id": 1, "name": "hornbeam"}, 2: {"id": 2, "name": "uring"}}
    yield


async def home(request):
    return PlainTextResponse("Hello from Starlette on hornbeam-uring!")


async def list_items(request):
    return JSONResponse(list(request.app.state.items.values()))


async def get_item(request):
    item = request.app.state.items.get(request.path_params["item_id"])
    if item is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse(item)


async def create_item(request):
    data = await request.json()
    items = request.app.state.items
    item = {"id": max(items, default=0) + 1, "name": str(data.get("name", ""))}
    items[item["id"]] = item
    return JSONResponse(item, status_code=201)


async def ticks(request):
    count = min(int(request.query_params.get("n", "5")), 100)

    async def gen():
        for i in range(count):
            yield ("tick %d\n" % i).encode()
            await asyncio.sleep(0.1)
    return StreamingResponse(gen(), media_type="text/plain")


async def uptime(request):
    return JSONResponse({"uptime_s": round(time.time() - request.app.state.started_at, 3)})


async def echo(websocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[
    Route("/", home),
    Route("/items", list_items),
    Route("/items", create_item, methods=["POST"]),
    Route("/items/{item_id:int}", get_item),
    Route("/ticks", ticks),
    Route("/uptime", uptime),
    WebSocketRoute("/ws", echo),
], lifespan=lifespan)
