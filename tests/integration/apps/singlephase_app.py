"""An app whose extension module refuses sub-interpreters (single-phase init)."""
import json

import hbtest_singlephase


def application(environ, start_response):
    body = json.dumps({"ext": hbtest_singlephase.__name__}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
