"""Shared state, pub/sub, registered functions and RPC for apps served by hornbeam-uring.

The same API as Hornbeam's (the Erlang server), name for name::

    from hornbeam_erlang import state_incr, publish, subscribe, register_function, call

    views = state_incr("views:/home")          # atomic across every worker
    publish("chat:lobby", {"from": "ann", "text": "hi"})

    async def ws_handler(scope, receive, send):    # ASGI / WebSocket
        async for msg in subscribe("chat:lobby"):
            await send({"type": "websocket.send", "text": msg["text"]})

Inside hornbeam-uring every function is backed by the server (the native ``_hornbeam`` module):
state lives in one shared map that every worker interpreter sees, a message published in one
worker reaches subscribers in all of them, and ``call(name)`` runs the function in the
interpreter that registered it. Imported anywhere else (plain ``python``, gunicorn, tests) the
same functions work in-process (a dict with a lock, an in-process pub/sub, a local function
registry), so an app runs unchanged under both; ``NATIVE`` says which one is in use.

Values (state, messages, call arguments and results) are None, bool, int (any size), float, str,
bytes, list, tuple and dict, nested; anything else raises TypeError naming the type. They are
copied: what ``state_get`` returns is never the object that was stored. Keys are str or bytes,
and ``"a"`` and ``b"a"`` are different keys.
"""

import collections
import fnmatch
import os
import socket
import threading
import time
import traceback
import importlib
import weakref

try:
    import _hornbeam as _hb
except ImportError:  # plain Python, gunicorn, ...
    _hb = None

#: True when the server's shared implementation is in use, False for the in-process fallback.
NATIVE = bool(_hb is not None and getattr(_hb, "in_server", 0))

__all__ = [
    "NATIVE", "state_get", "state_set", "state_delete", "state_incr", "state_decr",
    "state_get_multi", "state_keys", "state_stats", "publish", "subscribe", "Subscription",
    "register_function", "unregister_function", "registered_functions", "call", "acall", "cast",
    "node", "nodes", "rpc_call", "rpc_cast", "arpc_call", "cluster_stats", "StateLimitError",
    "StateFullError", "NodeNotConnected", "NodeDown", "RemoteError", "SubscriptionClosed",
    "FunctionNotRegistered", "WorkerTimeout",
]

_EMPTY = object()


def _set_done(fut):
    if not fut.done():
        fut.set_result(None)


class Subscription:
    """What ``subscribe(topic)`` returns: an async iterator of the messages published to the
    topic (``async for msg in sub``), also usable from sync code (``sub.get(timeout)``, or a
    plain ``for``). ``close()`` unsubscribes; so does ``async with``/``with``, and garbage
    collection. The queue keeps the newest ``queue_size`` messages: a subscriber that falls
    behind loses the oldest ones, counted in ``dropped``."""

    __slots__ = ("_s", "_native", "__weakref__")

    def __init__(self, impl, native):
        self._s = impl
        self._native = native

    # -- attributes
    @property
    def topic(self):
        return self._s.topic

    @property
    def dropped(self):
        """How many messages were dropped (oldest first) because the queue was full."""
        return self._s.dropped

    @property
    def pending(self):
        return self._s.pending

    @property
    def queue_size(self):
        return self._s.queue_size

    @property
    def closed(self):
        return self._s.closed

    # -- sync
    def get(self, timeout=None):
        """The next message. Waits up to ``timeout`` seconds (None: no limit); raises
        TimeoutError when none came and SubscriptionClosed once closed and drained."""
        return self._s.get(timeout)

    def get_nowait(self, *default):
        """The next message if one is queued, else ``default`` (TimeoutError without one)."""
        return self._s.get_nowait(*default)

    def close(self):
        self._s.close()

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._s.get(None)
        except SubscriptionClosed:
            raise StopIteration from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- async
    def __aiter__(self):
        return self

    async def __anext__(self):
        s = self._s
        while True:
            try:
                msg = s.get_nowait(_EMPTY)
            except SubscriptionClosed:
                raise StopAsyncIteration from None
            if msg is not _EMPTY:
                return msg
            await self._wait()

    async def aget(self, timeout=None):
        """Async ``get``: the next message, TimeoutError after ``timeout`` seconds."""
        import asyncio
        if timeout is None:
            return await self.__anext_or_closed()
        return await asyncio.wait_for(self.__anext_or_closed(), timeout)

    async def __anext_or_closed(self):
        s = self._s
        while True:
            msg = s.get_nowait(_EMPTY)  # SubscriptionClosed propagates
            if msg is not _EMPTY:
                return msg
            await self._wait()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        return False

    async def _wait(self):
        """Returns once a message (or the close) is there, without blocking the loop."""
        import asyncio
        loop = asyncio.get_running_loop()
        if not self._native:
            await self._s.arm(loop)
            return
        # The native subscription has an eventfd that is readable while messages are queued
        # (level-triggered), so a message that arrived before add_reader still wakes us.
        fd = self._s.fileno()
        fut = loop.create_future()
        try:
            loop.add_reader(fd, _set_done, fut)
        except (NotImplementedError, AttributeError, RuntimeError):
            await asyncio.sleep(0.005)  # an event loop without add_reader: poll
            return
        try:
            await fut
        finally:
            loop.remove_reader(fd)

    def __repr__(self):
        return "<hornbeam_erlang.Subscription %r pending=%d dropped=%d%s>" % (
            self.topic, self.pending, self.dropped, " closed" if self.closed else "")


if NATIVE:
    # ---------------------------------------------------------------- the server's own
    StateLimitError = _hb.StateLimitError
    StateFullError = _hb.StateFullError
    NodeNotConnected = _hb.NodeNotConnected
    SubscriptionClosed = _hb.SubscriptionClosed
    FunctionNotRegistered = _hb.FunctionNotRegistered
    RemoteError = _hb.RemoteError
    NodeDown = _hb.NodeDown
    WorkerTimeout = _hb.WorkerTimeout

    state_get = _hb.state_get
    state_set = _hb.state_set
    state_delete = _hb.state_delete
    state_incr = _hb.state_incr
    state_decr = _hb.state_decr
    state_get_multi = _hb.state_get_multi
    state_keys = _hb.state_keys
    state_stats = _hb.state_stats
    publish = _hb.publish
    register_function = _hb.register_function
    unregister_function = _hb.unregister_function
    registered_functions = _hb.registered_functions
    call = _hb.call
    cast = _hb.cast
    node = _hb.node
    nodes = _hb.nodes
    rpc_call = _hb.rpc_call
    rpc_cast = _hb.rpc_cast
    cluster_stats = _hb.cluster_stats

    def subscribe(topic, queue_size=None):
        """Subscribes to ``topic`` (a str; with ``*``, an fnmatch pattern) in every worker's
        publishes. ``queue_size`` defaults to the config's pubsub_queue_size (1000)."""
        return Subscription(_hb.subscribe(topic, queue_size), True)

else:
    # ---------------------------------------------------------------- in-process fallback
    class StateLimitError(ValueError):
        """A key or value is larger than the limits (state_max_key_size/_value_size)."""

    class StateFullError(MemoryError):
        """The shared state reached state_max_bytes."""

    class NodeNotConnected(ConnectionError):
        """rpc_call/rpc_cast to a node that is not connected."""

    class SubscriptionClosed(EOFError):
        """get() on a subscription that is closed and has no message left."""

    class FunctionNotRegistered(LookupError):
        """call()/cast() of a name nobody registered."""

    class RemoteError(RuntimeError):
        """The function called on another node raised; the message holds its traceback."""

    class NodeDown(NodeNotConnected):
        """The node went down (died, left, or its link closed) before it replied."""

    class WorkerTimeout(TimeoutError):
        """Raised by the server in a request's thread once it ran past ``timeout``."""

    _MAX_KEY = int(os.environ.get("HORNBEAM_STATE_MAX_KEY_SIZE", "1024"))
    _INT64 = (-(1 << 63), (1 << 63) - 1)
    _lock = threading.Lock()
    _state = {}

    def _copy(v, depth=0):
        """Deep copy restricted to the codec's types (what crossing a worker would do)."""
        if depth >= 64:
            raise ValueError("value nested deeper than 64 levels (or recursive)")
        if v is None or isinstance(v, (bool, int, float, str, bytes)):
            if type(v) in (bool, int, float, str, bytes) or v is None:
                return v
            for base in (bool, int, float, str, bytes):
                if isinstance(v, base):
                    return base(v)
        if isinstance(v, list):
            return [_copy(x, depth + 1) for x in v]
        if isinstance(v, tuple):
            return tuple(_copy(x, depth + 1) for x in v)
        if isinstance(v, dict):
            return {_copy(k, depth + 1): _copy(x, depth + 1) for k, x in v.items()}
        raise TypeError("cannot encode %r object: hornbeam values are None, bool, int, float, "
                        "str, bytes, list, tuple and dict" % type(v).__name__)

    def _key(key):
        if isinstance(key, str):
            n = len(key.encode("utf-8"))
        elif isinstance(key, bytes):
            n = len(key)
        else:
            raise TypeError("keys must be str or bytes, not %r" % type(key).__name__)
        if n > _MAX_KEY:
            raise StateLimitError("key of %d bytes is over state_max_key_size = %d" % (n, _MAX_KEY))
        return key

    def state_get(key, default=None):
        """The value stored at key (a copy), or default."""
        k = _key(key)
        with _lock:
            if k not in _state:
                return default
            v = _state[k]
        return _copy(v)

    def state_set(key, value):
        k = _key(key)
        v = _copy(value)
        with _lock:
            _state[k] = v

    def state_delete(key):
        k = _key(key)
        with _lock:
            return _state.pop(k, _EMPTY) is not _EMPTY

    def _add(key, delta, name):
        if not isinstance(delta, int):
            raise TypeError("%s() delta must be an int, not %r" % (name, type(delta).__name__))
        k = _key(key)
        with _lock:
            cur = _state.get(k, 0)
            if type(cur) is not int or not (_INT64[0] <= cur <= _INT64[1]):
                raise TypeError("the value of %r is not an int counter (64-bit)" % (key,))
            new = int(cur) + delta
            if not (_INT64[0] <= new <= _INT64[1]):
                raise OverflowError("counter %r would overflow a signed 64-bit int" % (key,))
            _state[k] = new
            return new

    def state_incr(key, delta=1):
        """Atomically adds delta (default 1) and returns the new value."""
        return _add(key, delta, "state_incr")

    def state_decr(key, delta=1):
        return _add(key, -delta, "state_decr")

    def state_get_multi(keys):
        """The keys that exist, with their values."""
        out = {}
        for key in keys:
            v = state_get(key, _EMPTY)
            if v is not _EMPTY:
                out[key] = v
        return out

    def state_keys(prefix=None):
        """Keys starting with prefix (a str prefix matches str keys, bytes bytes keys)."""
        if prefix is not None:
            _key(prefix)
        with _lock:
            ks = list(_state)
        if prefix is None:
            return ks
        return [k for k in ks if type(k) is type(prefix) and k.startswith(prefix)]

    def state_stats():
        with _lock:
            n = len(_state)
        with _subs_lock:
            subscribers = sum(len(v) for v in _live_subs().values())
        return {"entries": n, "pubsub_subscribers": subscribers}

    # -- pub/sub

    _QUEUE_SIZE = int(os.environ.get("HORNBEAM_PUBSUB_QUEUE_SIZE", "1000"))
    _subs_lock = threading.Lock()
    _subs = {}  # topic or pattern -> {_LocalSub: None}

    class _LocalSub:
        def __init__(self, topic, queue_size):
            self.topic = topic
            self.queue_size = queue_size
            self.dropped = 0
            self.closed = False
            self._q = collections.deque()
            self._cond = threading.Condition()
            self._waiters = []

        @property
        def pending(self):
            return len(self._q)

        def push(self, msg):
            with self._cond:
                if self.closed:
                    return False
                if len(self._q) >= self.queue_size:
                    self._q.popleft()
                    self.dropped += 1
                self._q.append(msg)
                self._cond.notify_all()
                waiters, self._waiters = self._waiters, []
            for loop, fut in waiters:
                try:
                    loop.call_soon_threadsafe(_set_done, fut)
                except RuntimeError:  # that loop is closed
                    pass
            return True

        def _take(self):
            if self._q:
                return self._q.popleft()
            if self.closed:
                raise SubscriptionClosed("subscription to %r is closed" % (self.topic,))
            return _EMPTY

        def get_nowait(self, *default):
            with self._cond:
                msg = self._take()
            if msg is not _EMPTY:
                return msg
            if default:
                return default[0]
            raise TimeoutError("no message on %r" % (self.topic,))

        def get(self, timeout=None):
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._cond:
                while True:
                    msg = self._take()
                    if msg is not _EMPTY:
                        return msg
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError("no message on %r" % (self.topic,))
                    self._cond.wait(left)

        def arm(self, loop):
            fut = loop.create_future()
            with self._cond:
                if self._q or self.closed:
                    fut.set_result(None)
                else:
                    self._waiters.append((loop, fut))
            return fut

        def drop(self):
            """The app dropped its Subscription. This may run inside a garbage collection, on
            any thread, while that thread holds _subs_lock or this queue's lock: it only
            flags the queue, and the registry purges it (_live_subs)."""
            self.closed = True

        def close(self):
            with _subs_lock:
                group = _subs.get(self.topic)
                if group is not None:
                    group.pop(self, None)
                    if not group:
                        del _subs[self.topic]
            with self._cond:
                self.closed = True
                self._cond.notify_all()
                waiters, self._waiters = self._waiters, []
            for loop, fut in waiters:
                try:
                    loop.call_soon_threadsafe(_set_done, fut)
                except RuntimeError:
                    pass

    def _topic(topic):
        if isinstance(topic, bytes):
            topic = topic.decode("utf-8")
        if not isinstance(topic, str):
            raise TypeError("topic must be str, not %r" % type(topic).__name__)
        if not topic or "\0" in topic or len(topic.encode("utf-8")) > 4096:
            raise ValueError("invalid topic %r: 1 to 4096 bytes of UTF-8 without NUL characters"
                             % (topic,))
        return topic

    def _live_subs():
        """Drops the queues of dropped Subscriptions from the registry; call with _subs_lock."""
        for pat in [p for p, g in _subs.items() if any(s.closed for s in g)]:
            group = {s: None for s in _subs[pat] if not s.closed}
            if group:
                _subs[pat] = group
            else:
                del _subs[pat]
        return _subs

    def publish(topic, message):
        """Queues message for every subscriber of topic; returns how many it reached."""
        topic = _topic(topic)
        msg = _copy(message)
        with _subs_lock:
            subs = _live_subs()
            targets = list(subs.get(topic, ()))
            for pat, group in subs.items():
                if "*" in pat and fnmatch.fnmatchcase(topic, pat):
                    targets.extend(group)
        return sum(1 for s in targets if s.push(_copy(msg)))

    def subscribe(topic, queue_size=None):
        """Subscribes to topic (with ``*``: an fnmatch pattern)."""
        topic = _topic(topic)
        if queue_size is not None and queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        s = _LocalSub(topic, queue_size or _QUEUE_SIZE)
        with _subs_lock:
            _subs.setdefault(topic, {})[s] = None  # a dict as an ordered set
        sub = Subscription(s, False)
        # The registry holds the queue, not the Subscription: once the app drops the
        # Subscription (no close()), the finalizer unsubscribes, as the native module does,
        # so publish() stops counting (and copying messages for) a subscriber nobody reads.
        weakref.finalize(sub, s.drop)
        return sub

    # -- functions

    _funcs_lock = threading.Lock()
    _funcs = {}

    def register_function(name, fn):
        """call(name, ...) runs fn (here: in this process)."""
        if not isinstance(name, str):
            raise TypeError("function name must be str, not %r" % type(name).__name__)
        if not callable(fn):
            raise TypeError("%r object is not callable" % type(fn).__name__)
        with _funcs_lock:
            _funcs[name] = fn

    def unregister_function(name):
        with _funcs_lock:
            return _funcs.pop(name, None) is not None

    def registered_functions():
        with _funcs_lock:
            return list(_funcs)

    def _run(what, name, fn, args):
        args = _copy(tuple(args))
        try:
            result = fn(*args)
        except Exception as e:
            raise RuntimeError("%s %r failed:\n%s" % (what, name, traceback.format_exc())) from e
        return _copy(result)

    def call(name, *args, timeout_ms=30000):
        """Runs the registered function and returns its result (through the value codec)."""
        with _funcs_lock:
            fn = _funcs.get(name)
        if fn is None:
            raise FunctionNotRegistered("no function registered as %r" % (name,))
        return _run("call", name, fn, args)

    def cast(name, *args, timeout_ms=None):
        """Like call, without the result (errors are printed)."""
        try:
            call(name, *args)
        except FunctionNotRegistered:
            raise
        except Exception:
            traceback.print_exc()

    # -- nodes

    _NODE = os.environ.get("HORNBEAM_NODE_NAME") or "hornbeam@" + socket.gethostname()

    def node():
        """This node's name."""
        return _NODE

    def nodes():
        """Connected nodes (none: no clustering)."""
        return []

    def _target(node_name, module, function):
        if node_name != _NODE:
            raise NodeNotConnected("node %r is not connected (clustering is not enabled; this "
                                   "node is %r)" % (node_name, _NODE))
        obj = importlib.import_module(module)
        for part in function.split("."):
            obj = getattr(obj, part)
        return obj

    def rpc_call(node, module, function, args=(), timeout_ms=5000):
        """module.function(*args) on node (only this one)."""
        fn = _target(node, module, function)
        return _run("rpc_call", "%s:%s" % (module, function), fn, args or ())

    def cluster_stats():
        """Counters of the cluster's data plane (none: no clustering)."""
        return {}

    def rpc_cast(node, module, function, args=()):
        fn = _target(node, module, function)
        try:
            _run("rpc_cast", "%s:%s" % (module, function), fn, args or ())
        except Exception:
            traceback.print_exc()


async def acall(name, *args, timeout_ms=30000):
    """``call`` for async code: waits in a thread of the loop's default executor, so the event
    loop keeps running while the other worker computes."""
    import asyncio
    import functools
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(call, name, *args, timeout_ms=timeout_ms))


async def arpc_call(node, module, function, args=(), timeout_ms=5000):
    """``rpc_call`` for async code (ASGI): waits in a thread of the loop's default executor, so
    the event loop keeps serving while the other node computes."""
    import asyncio
    import functools
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(
        rpc_call, node, module, function, args, timeout_ms=timeout_ms))


# Hornbeam's shortcuts.
get = state_get
set = state_set
delete = state_delete
incr = state_incr
decr = state_decr
