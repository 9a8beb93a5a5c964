"""A FastAPI app for tests/integration/test_py311.py (Debian's FastAPI 0.92 / pydantic 1.10,
which load only on Debian's Python 3.11): routing, a pydantic model, a WebSocket, and numpy
inputs to hornbeam_ml.cached_inference."""
from typing import List, Optional

import hornbeam_ml
import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

app = FastAPI()
CALLS = {"model": 0}


class Item(BaseModel):
    name: str
    price: float
    tags: List[str] = []


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: Optional[str] = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "double": item.price * 2, "tags": item.tags}


def model(x):
    CALLS["model"] += 1
    return (np.asarray(x, dtype=np.float64) * 2.0).sum()


@app.get("/infer")
def infer(values: str, dtype: str = "float64"):
    arr = np.array([float(v) for v in values.split(",")], dtype=dtype)
    result = hornbeam_ml.cached_inference(model, arr, cache_prefix="py311")
    return {"result": float(result), "calls": CALLS["model"],
            "stats": hornbeam_ml.cache_stats("py311")}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text("echo " + text)
    except WebSocketDisconnect:
        pass
