"""Flask app for perf/bench.py (hornbeam-uring, gunicorn, uWSGI run this same code).

  /hello/<name>  routing + Jinja2 template (templates/hello.html)
  /json          a JSON endpoint (flask.jsonify of a small dict)
"""
from flask import Flask, jsonify, render_template

app = Flask(__name__)
ITEMS = list(range(10))


@app.route("/hello/<name>")
def hello(name):
    return render_template("hello.html", name=name, items=ITEMS)


@app.route("/json")
def json_endpoint():
    return jsonify(message="Hello, World!", id=1, ok=True, tags=["a", "b"])


application = app
