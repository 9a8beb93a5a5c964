"""The web node of examples/distributed_rpc: POST /predict runs ml_model.predict on the model
node (rpc_call over the cluster) and returns its answer; GET /nodes shows the cluster.

The model node is HORNBEAM_ML_NODE when set, else the first node in nodes() whose name starts
with "ml@" (in Kubernetes the names are ml@<pod ip>, so any model pod will do).
"""
import json
import os

import hornbeam_erlang as hb


def model_node():
    name = os.environ.get("HORNBEAM_ML_NODE")
    if name:
        return name
    for n in hb.nodes():
        if n.startswith("ml@"):
            return n
    return None


def _reply(start_response, status, obj):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/nodes":
        return _reply(start_response, "200 OK", {"node": hb.node(), "nodes": hb.nodes()})
    if path != "/predict":
        return _reply(start_response, "404 Not Found", {"error": "try POST /predict"})
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        features = json.loads(environ["wsgi.input"].read(size) or b"{}").get("features")
    except ValueError:
        return _reply(start_response, "400 Bad Request", {"error": "send JSON {\"features\": [...]}"})
    node = model_node()
    if node is None:
        return _reply(start_response, "503 Service Unavailable",
                      {"error": "no model node in the cluster yet", "nodes": hb.nodes()})
    try:
        result = hb.rpc_call(node, "ml_model", "predict", [features], timeout_ms=2000)
    except hb.RemoteError as e:  # predict raised: its traceback is in the message
        return _reply(start_response, "400 Bad Request", {"error": str(e).splitlines()[-1]})
    except (hb.NodeNotConnected, TimeoutError) as e:  # NodeDown is a NodeNotConnected
        return _reply(start_response, "503 Service Unavailable", {"error": str(e)})
    return _reply(start_response, "200 OK", {"prediction": result, "served_by": hb.node()})
