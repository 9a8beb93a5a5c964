"""Type stubs for hornbeam_erlang (see hornbeam_erlang.py and docs)."""
from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

# What crosses workers: None, bool, int (any size), float, str, bytes, list, tuple, dict, nested.
Value = Union[None, bool, int, float, str, bytes, List["Value"], Tuple["Value", ...], Dict["Value", "Value"]]
Key = Union[str, bytes]  # "a" and b"a" are different keys

NATIVE: bool

class StateLimitError(ValueError):
    """A key over state_max_key_size or a value over state_max_value_size (encoded)."""

class StateFullError(MemoryError):
    """The shared state reached state_max_bytes."""

class NodeNotConnected(ConnectionError):
    """rpc_call/rpc_cast/call to a node that is not in nodes() (nor node())."""

class NodeDown(NodeNotConnected):
    """The node went down (died, left, or its link closed) before it replied."""

class RemoteError(RuntimeError):
    """The function called on another node raised; the message holds its traceback text."""

class SubscriptionClosed(EOFError):
    """get() on a subscription that is closed and has no message left."""

class FunctionNotRegistered(LookupError):
    """call()/cast() of a name that no worker registered."""

class WorkerTimeout(TimeoutError):
    """Raised by the server in a WSGI request's thread once it ran past ``timeout`` (the
    client already got 504): a pure-Python loop stops there. Blocking C calls (time.sleep,
    socket reads) finish first."""

# -- shared state (TypeError for other value types, naming the type)
def state_get(key: Key, default: Any = None) -> Value: ...
def state_set(key: Key, value: Value) -> None: ...
def state_delete(key: Key) -> bool: ...
def state_incr(key: Key, delta: int = 1) -> int:
    """Atomic across workers; a missing key counts as 0; OverflowError past int64,
    TypeError when the stored value is not an int."""
def state_decr(key: Key, delta: int = 1) -> int: ...
def state_get_multi(keys: Iterable[Key]) -> Dict[Key, Value]: ...
def state_keys(prefix: Optional[Key] = None) -> List[Key]: ...
def state_stats() -> Dict[str, int]: ...

# -- pub/sub
class Subscription:
    topic: str
    dropped: int
    pending: int
    queue_size: int
    closed: bool
    def get(self, timeout: Optional[float] = None) -> Value:
        """TimeoutError when nothing came, SubscriptionClosed once closed and drained."""
    def get_nowait(self, *default: Any) -> Value: ...
    async def aget(self, timeout: Optional[float] = None) -> Value: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[Value]: ...
    def __next__(self) -> Value: ...
    def __aiter__(self) -> AsyncIterator[Value]: ...
    async def __anext__(self) -> Value: ...
    def __enter__(self) -> "Subscription": ...
    def __exit__(self, *exc: Any) -> bool: ...
    async def __aenter__(self) -> "Subscription": ...
    async def __aexit__(self, *exc: Any) -> bool: ...

def publish(topic: str, message: Value) -> int:
    """Returns how many subscribers (in every worker) it reached."""
def subscribe(topic: str, queue_size: Optional[int] = None) -> Subscription:
    """A topic holding '*' is an fnmatch pattern. queue_size defaults to pubsub_queue_size."""

# -- registered functions
def register_function(name: str, fn: Callable[..., Value]) -> None: ...
def unregister_function(name: str) -> bool: ...
def registered_functions() -> List[str]: ...
def call(name: str, *args: Value, timeout_ms: int = 30000) -> Value:
    """Runs fn in the interpreter that registered it. RuntimeError (with the remote traceback)
    when it raised, TimeoutError after timeout_ms, FunctionNotRegistered for unknown names."""
async def acall(name: str, *args: Value, timeout_ms: int = 30000) -> Value:
    """call() for async code: waits in the loop's default executor."""
def cast(name: str, *args: Value) -> None: ...

# -- nodes
def node() -> str: ...
def nodes() -> List[str]: ...
def rpc_call(node: str, module: str, function: str, args: Iterable[Value] = ..., timeout_ms: int = 5000) -> Value:
    """module.function(*args) in a worker of node: RemoteError when it raised, TimeoutError after
    timeout_ms, NodeNotConnected for a node not in nodes(), NodeDown when it died mid-call."""
async def arpc_call(node: str, module: str, function: str, args: Iterable[Value] = ..., timeout_ms: int = 5000) -> Value:
    """rpc_call() for async code: waits in the loop's default executor."""
def rpc_cast(node: str, module: str, function: str, args: Iterable[Value] = ...) -> None: ...
def cluster_stats() -> Dict[str, int]:
    """calls_sent, calls_served, calls_refused, publish_sent, publish_received, publish_dropped
    ({} without a cluster)."""

# Hornbeam's shortcuts
get = state_get
set = state_set
delete = state_delete
incr = state_incr
decr = state_decr
