"""The model node of examples/distributed_rpc: `predict` is what the web node calls with
rpc_call(ml_node, "ml_model", "predict", [features]); `app` is this node's own small HTTP
app (what it serves, for a health check).

The "model" is a fixed logistic regression over any number of features, so the example runs
anywhere without downloads; swap in a real one (load it at import: every worker of this node
imports this module once and keeps it).
"""
import json
import math

import hornbeam_erlang as hb

WEIGHTS = [0.8, -0.4, 0.25, 0.1]
BIAS = -0.2
VERSION = "logreg-1"


def predict(features):
    """features: a list of numbers. Returns the score, the label and who computed it."""
    if not isinstance(features, list) or not all(isinstance(x, (int, float)) for x in features):
        raise ValueError("features must be a list of numbers, got %r" % (features,))
    z = BIAS + sum(w * x for w, x in zip(WEIGHTS * (len(features) // len(WEIGHTS) + 1), features))
    score = 1.0 / (1.0 + math.exp(-z))
    return {"score": round(score, 6), "label": int(score >= 0.5), "model": VERSION,
            "node": hb.node()}


def app(environ, start_response):
    body = json.dumps({"node": hb.node(), "model": VERSION, "nodes": hb.nodes()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
