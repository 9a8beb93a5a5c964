"""Embedding service: POST /embed {"texts": [...]} -> {"embeddings": [[...], ...]}.

Embeddings are cached with hornbeam_ml.cached_inference, so a text embedded by one worker is a
cache hit in every other worker (the cache lives in hornbeam-uring's shared state). The model is
sentence-transformers' all-MiniLM-L6-v2 when that package is installed (EMBEDDING_MODEL
overrides the name), else a small deterministic pure-Python embedder, so the example runs
anywhere. Outside hornbeam-uring (plain python, gunicorn) the same code runs with an in-process
cache.

    hornbeam-uring app:application --pythonpath examples/embedding_service --workers 4
    curl -s localhost:8000/embed -d '{"texts": ["hello", "world"]}'
    curl -s localhost:8000/metrics
"""
import hashlib
import json
import math
import os

from hornbeam_erlang import state_get, state_incr
from hornbeam_ml import cache_stats, cached_inference

DIM = 64


class HashEmbedder:
    """Deterministic bag-of-character-trigrams embedding (unit length). Not semantic, but
    stable across processes and runs, which is what a cache example needs."""

    name = "hash-trigram-%d" % DIM

    def encode(self, text):
        v = [0.0] * DIM
        padded = "  %s  " % text.lower()
        for i in range(len(padded) - 2):
            h = hashlib.blake2b(padded[i:i + 3].encode("utf-8"), digest_size=8).digest()
            j = int.from_bytes(h[:4], "little") % DIM
            v[j] += 1.0 if h[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]


class SentenceTransformerEmbedder:
    def __init__(self, model_name):
        from sentence_transformers import SentenceTransformer
        self.model = SentenceTransformer(model_name)
        self.name = model_name

    def encode(self, text):
        return self.model.encode(text).tolist()


_model = None


def get_model():
    """Loads the model once per worker, on first use."""
    global _model
    if _model is None:
        try:
            _model = SentenceTransformerEmbedder(os.environ.get("EMBEDDING_MODEL", "all-MiniLM-L6-v2"))
        except Exception:  # not installed (or not loadable here): the pure-Python default
            _model = HashEmbedder()
    return _model


def embed(text):
    model = get_model()
    return cached_inference(model.encode, text, cache_prefix="emb:" + model.name)


def _json(start_response, status, obj):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    state_incr("requests_total")
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")

    if method == "POST" and path == "/embed":
        try:
            n = int(environ.get("CONTENT_LENGTH") or 0)
            data = json.loads(environ["wsgi.input"].read(n) or b"{}")
            texts = data.get("texts", [])
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("texts must be a list of strings")
        except ValueError as e:
            return _json(start_response, "400 Bad Request", {"error": str(e)})
        return _json(start_response, "200 OK", {"model": get_model().name,
                                               "embeddings": [embed(t) for t in texts]})

    if path == "/metrics":
        return _json(start_response, "200 OK", {
            "requests_total": state_get("requests_total") or 0,
            "cache": cache_stats(),
        })

    if path == "/":
        body = b'Embedding Service - POST /embed with {"texts": [...]} or GET /metrics\n'
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return _json(start_response, "404 Not Found", {"error": "not found"})


app = application
