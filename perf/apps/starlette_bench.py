"""Starlette app for perf/bench.py (hornbeam-uring asgi, uvicorn, hypercorn run this same code).

  /hello/{name}  routing + Jinja2 template (templates/hello.html)
  /json          a JSON endpoint (JSONResponse of a small dict)
"""
import os

import jinja2
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")),
    autoescape=True)
_tmpl = _env.get_template("hello.html")
ITEMS = list(range(10))


async def hello(request):
    return HTMLResponse(_tmpl.render(name=request.path_params["name"], items=ITEMS))


async def json_endpoint(request):
    return JSONResponse({"message": "Hello, World!", "id": 1, "ok": True, "tags": ["a", "b"]})


app = Starlette(routes=[Route("/hello/{name}", hello), Route("/json", json_endpoint)])
application = app
