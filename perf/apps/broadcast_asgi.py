"""WebSocket broadcast (pub/sub fan-out) for perf/bench.py's ws-broadcast scenario.

Every WebSocket connection to /ws subscribes to one topic, sends the text "ready" once its
subscription exists, forwards every message published to the topic, and publishes every text
message it receives. perf/ws/wsfanout.c connects 100 clients and publishes from one of them.

Inside hornbeam-uring the topic is hornbeam_erlang's pub/sub (publish/subscribe, which reaches
every worker). Under another server (uvicorn) the same shape runs on an in-process asyncio
fan-out: a set of per-connection queues, publish puts the message on each. GET / answers "ok"
(the harness's probe).
"""
import asyncio

from asgi_common import websocket_app

TOPIC = "bench:broadcast"

try:
    import _hornbeam  # noqa: F401  (only importable inside hornbeam-uring)
    from hornbeam_erlang import publish, subscribe
except ImportError:
    class _Sub:
        def __init__(self, subs):
            self.queue, self.subs = asyncio.Queue(), subs
            subs.add(self)

        def __aiter__(self):
            return self

        async def __anext__(self):
            return await self.queue.get()

        def close(self):
            self.subs.discard(self)

    _SUBS = set()

    def subscribe(topic):
        return _Sub(_SUBS)

    def publish(topic, message):
        for s in _SUBS:
            s.queue.put_nowait(message)
        return len(_SUBS)


async def _forward(sub, send):
    async for msg in sub:
        await send({"type": "websocket.send", "text": msg})


async def fan_out(receive, send):
    sub = subscribe(TOPIC)
    forwarder = asyncio.ensure_future(_forward(sub, send))
    await send({"type": "websocket.send", "text": "ready"})
    try:
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            if m.get("text") is not None:
                publish(TOPIC, m["text"])
    finally:
        forwarder.cancel()
        sub.close()


app = websocket_app(fan_out)
