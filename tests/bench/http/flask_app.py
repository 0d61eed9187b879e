#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""flask_app.py - the peer of bench_http.sh: the Open Inference Protocol
v2 infer of an iris model, as a Flask app for gunicorn, the way one is
commonly written by hand.

Serves POST /v2/models/<name>/infer with the request and answer shapes of
mlfs's (fs/http/oip.c): the body's "inputs" are one [N, 4] tensor (rows
nested or flat) or one [N] tensor per feature, by name; the answer has
the outputs "predict" (BYTES, [N]) and "proba" (FP64, [N, 3], row-major,
flat), model_name, model_version and the request's id if it has one.
Malformed requests are answered 400 with {"error": ...}, as mlfs does.
GET /v2/health/ready answers {"ready": true}.

The model is the one mlfs trains for {"algorithm": "logistic"}: a
scikit-learn StandardScaler then LogisticRegression(C=1) (mlfs's default
l2 is 1/n, so C = 1/(n * l2) = 1, DESIGN.md §4), fitted when a worker
starts on the rows of MLFS_BENCH_CSV (iris.csv: four features, then the
label) that MLFS_BENCH_SPLIT (mlfs's jobs/<job>/split, "row,set" lines)
marks "train"; without a split, on every row.

Run: MLFS_BENCH_CSV=iris.csv [MLFS_BENCH_SPLIT=split] \\
     gunicorn -w 2 -k gthread --threads 16 -b 127.0.0.1:PORT flask_app:app
(Debian: python3-flask, gunicorn, python3-sklearn).
"""
import csv
import os

import numpy as np
from flask import Flask, jsonify, request
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def train():
    with open(os.environ["MLFS_BENCH_CSV"], newline="") as fp:
        rows = list(csv.reader(fp))
    header, rows = rows[0], [r for r in rows[1:] if r]
    cols = [header.index(f) for f in FEATURES]
    label = header.index("species")
    keep = range(len(rows))
    split = os.environ.get("MLFS_BENCH_SPLIT")
    if split:
        with open(split, newline="") as fp:
            keep = [int(r[0]) for r in csv.reader(fp)
                    if r and r[0] != "row" and r[1] == "train"]
    x = np.array([[float(rows[i][c]) for c in cols] for i in keep])
    y = np.array([rows[i][label] for i in keep])
    m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0,
                                                           max_iter=1000))
    m.fit(x, y)
    return m


MODEL = train()
CLASSES = [str(c) for c in MODEL.classes_]
app = Flask(__name__)
app.json.sort_keys = False  # the keys in mlfs's order, as written


class BadRequest(Exception):
    pass


def features(body):
    """The request's rows as an [N, 4] float array."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('"inputs" must be a list of tensors')
    try:
        if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:
            t = inputs[0]
            n, f = t["shape"]
            if f != len(FEATURES):
                raise BadRequest("inputs[0] (%s): %d columns, the model "
                                 "has %d inputs" % (t["name"], f,
                                                    len(FEATURES)))
            x = np.asarray(t["data"], dtype=np.float64).reshape(n, f)
        else:
            by_name = {t["name"]: t for t in inputs}
            n = inputs[0]["shape"][0]
            x = np.column_stack([np.asarray(by_name[f]["data"],
                                            dtype=np.float64).reshape(n)
                                 for f in FEATURES])
    except BadRequest:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise BadRequest("bad inputs: %s" % e)
    return x


@app.post("/v2/models/<name>/infer")
def infer(name):
    body = request.get_json(force=True, silent=True)
    try:
        x = features(body)
    except BadRequest as e:
        return jsonify({"error": str(e)}), 400
    pred = MODEL.predict(x)
    proba = MODEL.predict_proba(x)
    n = len(x)
    out = {
        "model_name": name,
        "model_version": "1",
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [n],
             "data": [str(p) for p in pred]},
            {"name": "proba", "datatype": "FP64", "shape": [n, len(CLASSES)],
             "data": proba.ravel().tolist()},
        ],
    }
    if "id" in body:
        out["id"] = body["id"]
    return jsonify(out)


@app.get("/v2/health/ready")
def ready():
    return jsonify({"ready": True})
