"""A Flask app that logs through app.logger on every request (tests/integration/test_shutdown_clean.py)."""
import logging

from flask import Flask, request

logging.basicConfig(level=logging.INFO)
app = Flask(__name__)
app.logger.setLevel(logging.INFO)


@app.route("/")
def index():
    app.logger.info("flask request %s", request.path)
    return "hello\n"
