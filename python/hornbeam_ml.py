"""ML result caching for hornbeam apps, shared by every worker.

    from hornbeam_ml import cached_inference, cache_stats

    def application(environ, start_response):
        embedding = cached_inference(model.encode, text)   # computed once, then a hit everywhere
        ...

Results are stored with ``hornbeam_erlang.state_set``: inside hornbeam-uring a result computed
by one worker is a hit in all of them; elsewhere (plain python, gunicorn) the cache is
in-process. The cache key is ``"<cache_prefix>:<hash>"`` where the hash is a SHA-256 of a
canonical encoding of the input: str, bytes, bool, int, float, None, lists/tuples and dicts
(keys sorted) are encoded by value and type, so equal inputs always share an entry and
``1``, ``1.0``, ``"1"`` and ``b"1"`` never do; a numpy array is keyed by dtype, shape and its
bytes (C order). Other inputs need an explicit ``cache_key`` (TypeError otherwise). An explicit
``cache_key`` is used as ``"<cache_prefix>:<cache_key>"``.

Results must be values the codec carries (None, bool, int, float, str, bytes, list, tuple,
dict); numpy arrays and scalars are stored as lists / Python numbers (``tolist()``). The first
call returns ``fn``'s own result; hits return the stored form.

Expiry and size (per call, or module-wide with ``configure``):

* ``ttl`` (seconds): an entry older than ``ttl`` when read is a miss, and is recomputed and
  replaced. Entries remember when they were stored, so ``ttl`` applies to entries written
  before it was set too. None: no expiry.
* ``max_entries``: a soft cap per ``cache_prefix``. Each new entry counts one; once the count
  passes the cap, the oldest tenth of that prefix's entries (by store time) are deleted. Under
  concurrent misses the count may overshoot a little; it never grows without bound. None: no
  cap (the state's ``state_max_bytes`` still bounds memory: when it is full, results are
  returned without being cached).

``cache_stats()`` reads hit and miss counters kept in the shared map (``ml_cache_hits`` /
``ml_cache_misses``, as Hornbeam names them), so they count every worker.

Key spaces. Entries are str keys ``"<cache_prefix>:..."``; the module's own per-prefix counters
(hits, misses, entries) are **bytes** keys (``b"hbml\0<cache_prefix>\0hits"``). The shared map
keeps ``"a"`` and ``b"a"`` apart, so no ``cache_key`` or ``cache_prefix`` can reach a counter
(``cache_key="__hits"`` is an entry like any other).
"""

import hashlib
import math
import struct
import time

import hornbeam_erlang as _hb

__all__ = ["cached_inference", "cache_stats", "cache_clear", "configure", "make_cache_key"]

_HITS = "ml_cache_hits"
_MISSES = "ml_cache_misses"
_settings = {"ttl": None, "max_entries": None}
_UNSET = object()


def configure(ttl=_UNSET, max_entries=_UNSET):
    """Sets the defaults for ``ttl`` (seconds) and ``max_entries`` (None turns one off)."""
    if ttl is not _UNSET:
        _settings["ttl"] = ttl
    if max_entries is not _UNSET:
        _settings["max_entries"] = max_entries


# ---- stable hashing --------------------------------------------------------------------

def _feed(h, tag, data):
    h.update(tag)
    h.update(struct.pack("<Q", len(data)))
    h.update(data)


def _canon(h, x, depth=0):
    if depth > 64:
        raise ValueError("input nested deeper than 64 levels (or recursive)")
    if x is None:
        h.update(b"N")
    elif x is True or x is False:
        h.update(b"T" if x else b"F")
    elif isinstance(x, int):
        _feed(h, b"i", str(int(x)).encode())
    elif isinstance(x, float):
        _feed(h, b"f", (repr(x) if math.isnan(x) else float(x).hex()).encode())
    elif isinstance(x, str):
        _feed(h, b"s", x.encode("utf-8", "surrogatepass"))
    elif isinstance(x, (bytes, bytearray, memoryview)):
        _feed(h, b"b", bytes(x))
    elif isinstance(x, (list, tuple)):
        h.update(b"l" + struct.pack("<Q", len(x)))
        for item in x:
            _canon(h, item, depth + 1)
    elif isinstance(x, dict):
        items = []
        for k, v in x.items():
            kh = hashlib.sha256()
            _canon(kh, k, depth + 1)
            items.append((kh.digest(), v))
        items.sort(key=lambda kv: kv[0])
        h.update(b"d" + struct.pack("<Q", len(items)))
        for kd, v in items:
            h.update(kd)
            _canon(h, v, depth + 1)
    elif _is_numpy(x):
        import numpy as np
        a = np.ascontiguousarray(x)
        _feed(h, b"a", ("%s|%r" % (a.dtype.str, a.shape)).encode())
        if a.dtype.hasobject:
            _canon(h, a.tolist(), depth + 1)
        else:
            h.update(a.tobytes())
    elif hasattr(x, "item") and type(x).__module__ == "numpy":  # numpy scalar
        _canon(h, x.item(), depth + 1)
    else:
        raise TypeError("cannot hash a %r input for the cache: pass cache_key=" % type(x).__name__)


def _is_numpy(x):
    t = type(x)
    return t.__module__ == "numpy" and t.__name__ == "ndarray"


def make_cache_key(input_data, cache_prefix="ml"):
    """The key ``cached_inference`` uses for input_data."""
    h = hashlib.sha256()
    _canon(h, input_data)
    return "%s:%s" % (cache_prefix, h.hexdigest()[:32])


def _to_cacheable(value):
    """numpy arrays and scalars to lists and Python numbers, recursively."""
    if _is_numpy(value) or (hasattr(value, "tolist") and type(value).__module__ == "numpy"):
        return value.tolist()
    if isinstance(value, list):
        return [_to_cacheable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_cacheable(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cacheable(v) for k, v in value.items()}
    return value


# ---- the cache -------------------------------------------------------------------------
# An entry is the tuple ("hbml1", stored_at_unix_seconds, result).

_TAG = "hbml1"


def _counter_key(cache_prefix, what):
    """A bytes key: out of reach of every entry key, which are str (see the module doc)."""
    return b"hbml\0" + str(cache_prefix).encode("utf-8", "surrogatepass") + b"\0" + what.encode()


def _evict(cache_prefix, max_entries):
    """Deletes the oldest tenth of the prefix's entries and lowers the count by as many."""
    keys = _hb.state_keys(cache_prefix + ":")  # str keys only: entries, never counters
    aged = []
    for k in keys:
        e = _hb.state_get(k)
        if isinstance(e, tuple) and len(e) == 3 and e[0] == _TAG:
            aged.append((e[1], k))
    aged.sort()
    drop = max(1, len(aged) - max_entries + max_entries // 10)
    n = 0
    for _, k in aged[:drop]:
        if _hb.state_delete(k):
            n += 1
    if n:
        _hb.state_decr(_counter_key(cache_prefix, "entries"), n)


def cached_inference(fn, input_data, cache_key=None, cache_prefix="ml", ttl=_UNSET,
                     max_entries=_UNSET):
    """Returns ``fn(input_data)``, cached in the shared state under a stable hash of the input
    (or ``cache_key``). See the module documentation for ttl and max_entries."""
    ttl = _settings["ttl"] if ttl is _UNSET else ttl
    max_entries = _settings["max_entries"] if max_entries is _UNSET else max_entries
    key = "%s:%s" % (cache_prefix, cache_key) if cache_key is not None \
        else make_cache_key(input_data, cache_prefix)
    entry = _hb.state_get(key)
    if isinstance(entry, tuple) and len(entry) == 3 and entry[0] == _TAG:
        if ttl is None or time.time() - entry[1] <= ttl:
            _hb.state_incr(_HITS)
            _hb.state_incr(_counter_key(cache_prefix, "hits"))
            return entry[2]
    _hb.state_incr(_MISSES)
    _hb.state_incr(_counter_key(cache_prefix, "misses"))
    result = fn(input_data)
    try:
        _hb.state_set(key, (_TAG, time.time(), _to_cacheable(result)))
    except (_hb.StateLimitError, _hb.StateFullError):
        return result  # too big to share, or the state is full: still a valid answer
    if entry is None and max_entries:
        if _hb.state_incr(_counter_key(cache_prefix, "entries")) > max_entries:
            _evict(cache_prefix, max_entries)
    return result


def cache_stats(cache_prefix=None):
    """{"hits", "misses", "hit_rate"} across all workers (for one prefix, or all of them)."""
    if cache_prefix is None:
        hits = _hb.state_get(_HITS) or 0
        misses = _hb.state_get(_MISSES) or 0
    else:
        hits = _hb.state_get(_counter_key(cache_prefix, "hits")) or 0
        misses = _hb.state_get(_counter_key(cache_prefix, "misses")) or 0
    total = hits + misses
    return {"hits": hits, "misses": misses, "hit_rate": hits / total if total else 0.0}


def cache_clear(cache_prefix="ml"):
    """Deletes every entry and counter of a prefix. Returns how many keys went."""
    n = 0
    for k in _hb.state_keys(cache_prefix + ":") + [_counter_key(cache_prefix, w)
                                                   for w in ("hits", "misses", "entries")]:
        n += bool(_hb.state_delete(k))
    return n
