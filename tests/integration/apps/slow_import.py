"""An app whose import takes HB_SLOW_IMPORT seconds, then writes HB_IMPORT_MARKER (for the
readiness test: the suite must not call a server ready before its app is imported)."""
import os
import time

time.sleep(float(os.environ.get("HB_SLOW_IMPORT", "1.5")))
_marker = os.environ.get("HB_IMPORT_MARKER")
if _marker:
    with open(_marker, "w") as f:
        f.write("imported\n")


def app(environ, start_response):
    body = b"ready"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
