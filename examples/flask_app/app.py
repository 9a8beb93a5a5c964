"""A small Flask app served by hornbeam-uring.

    hornbeam-uring app:app --pythonpath examples/flask_app --bind 127.0.0.1:8000

(On Debian, also pass --pythonpath /usr/lib/python3/dist-packages to use the packaged Flask.)
"""
from flask import Flask, jsonify, request, abort

app = Flask(__name__)

ITEMS = {1: {"id": 1, "name": "hornbeam"}, 2: {"id": 2, "name": "uring"}}


@app.route("/")
def index():
    return "Hello from Flask on hornbeam-uring\n"


@app.route("/items")
def list_items():
    return jsonify(items=sorted(ITEMS.values(), key=lambda i: i["id"]))


@app.route("/items/<int:item_id>")
def get_item(item_id):
    item = ITEMS.get(item_id)
    if item is None:
        abort(404)
    return jsonify(item)


@app.route("/echo", methods=["POST"])
def echo_json():
    data = request.get_json(force=True, silent=True)
    if data is None:
        return jsonify(error="expected a JSON body"), 400
    return jsonify(received=data, length=request.content_length)


@app.route("/form", methods=["POST"])
def form():
    name = request.form.get("name", "")
    return jsonify(greeting="hello " + name, fields=sorted(request.form.keys()))


@app.route("/info")
def info():
    return jsonify(method=request.method, path=request.path, args=request.args.to_dict(),
                   script_root=request.script_root, remote_addr=request.remote_addr)


@app.errorhandler(404)
def not_found(e):
    return jsonify(error="not found", path=request.path), 404


application = app
