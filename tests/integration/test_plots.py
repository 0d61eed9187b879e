"""Plots through a real mount: each picture of a version, a search and a
deployment renders with rsvg-convert and is well-formed XML (xmllint);
a golden check compares axis ranges, tick labels, AUCs and counts with
values this test computes on its own from the version's files."""
import json
import math
import os
import random
import re
import struct
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import as_user
from test_deployments import deploy, two_models
from test_train import IRIS, iris, train

SVG = "{http://www.w3.org/2000/svg}"


def render(path, tmp_path):
    """rsvg-convert to PNG; xmllint; the PNG's width and height."""
    r = subprocess.run(["xmllint", "--noout", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    png = tmp_path / (path.name + ".png")
    r = subprocess.run(["rsvg-convert", "-o", str(png), str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def viewbox(root):
    return [float(v) for v in root.get("viewBox").split()]


def texts(root):
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


def panels(root):
    """Each panel's <desc>: {'x': (lo, hi, step), 'y': ...}."""
    out = []
    for d in root.iter(SVG + "desc"):
        m = re.fullmatch(r"x: (\S+) to (\S+) step (\S+); "
                         r"y: (\S+) to (\S+) step (\S+)", d.text or "")
        if m:
            v = [float(g) for g in m.groups()]
            out.append({"x": tuple(v[:3]), "y": tuple(v[3:])})
    return out


def nice_axis(lo, hi, want=6):
    """The axis rule the issue asks for, written here again: the step is
    (hi - lo) / (want - 1) rounded to 1, 2 or 5 times a power of ten
    (Heckbert's rounding), the ends the multiples of it around the
    data."""
    if hi - lo <= abs(hi) * 1e-12:
        pad = 1 if lo == 0 else abs(lo) / 10
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / (want - 1)
    e = math.floor(math.log10(raw))
    f = raw / 10 ** e
    step = (1 if f < 1.5 else 2 if f < 3 else 5 if f < 7 else 10) * 10 ** e
    return (math.floor(lo / step) * step, math.ceil(hi / step) * step, step)


def same_axis(got, want):
    assert all(math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9)
               for g, w in zip(got, want)), (got, want)


def auc(scores, positive):
    """Mann-Whitney: the chance a positive outranks a negative (ties
    half), counted pair by pair."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_a_classifier_has_learning_roc_and_confusion(mlfs, tmp_path):
    iris(mlfs)
    assert train(mlfs, "j", {"dataset": "iris", "algorithm": "logistic",
                             "model": "iris"}) == "succeeded\n"
    v = mlfs.mnt / "models/iris/v1"
    names = set(os.listdir(v))
    assert {"learning.svg", "roc.svg", "confusion.svg",
            "evaluation.json"} <= names
    assert not names & {"residuals.svg", "clusters.svg"}
    assert not (v / "residuals.svg").exists()
    ev = json.loads((v / "evaluation.json").read_text())
    metrics = json.loads((v / "metrics.json").read_text())
    for name in ("learning.svg", "roc.svg", "confusion.svg"):
        data = (v / name).read_bytes()
        assert os.stat(v / name).st_size == len(data)
        root = ET.fromstring(data)
        w, h = render(v / name, tmp_path)
        assert [0, 0, w, h] == viewbox(root)       # sized by its viewBox
        assert root.find(SVG + "title").text.startswith("iris v1: ")
        assert "(logistic)" in root.find(SVG + "title").text

    # roc.svg: an AUC per class, one against the rest, as computed here
    root = ET.parse(v / "roc.svg").getroot()
    classes = ev["classes"]
    assert classes == ["setosa", "versicolor", "virginica"]
    y, proba = ev["heldout"]["y"], ev["heldout"]["proba"]
    assert ev["heldout"]["rows"] == metrics["n"] == len(y)
    legend = [t for t in texts(root) if "(AUC" in t]
    want = [f"{c} (AUC {auc([p[i] for p in proba], [k == i for k in y]):.3f})"
            for i, c in enumerate(classes)]
    assert legend == want
    # their mean is the macro AUC metrics.json reports
    got = [float(re.search(r"AUC (\S+)\)", t).group(1)) for t in legend]
    assert abs(sum(got) / 3 - metrics["roc_auc"]) < 2e-3
    same_axis(panels(root)[0]["x"], (0, 1, 0.2))
    assert {"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"} <= set(texts(root))

    # learning.svg: the loss panel spans the losses the job reported
    root = ET.parse(v / "learning.svg").getroot()
    loss = [p[1] for p in ev["curves"]["loss"]]
    steps = [p[0] for c in ev["curves"].values() for p in c]
    metric_lines = [json.loads(l) for l in
                    (mlfs.mnt / "jobs/j/metrics").read_text().splitlines()]
    assert [m["value"] for m in metric_lines if m["name"] == "loss"] == \
        pytest.approx(loss, rel=1e-8)
    p = panels(root)
    assert len(p) == 2
    same_axis(p[0]["y"], nice_axis(min(loss), max(loss)))
    same_axis(p[0]["x"], nice_axis(min(steps), max(steps)))
    lo, hi, step = p[0]["y"]
    labels = set(texts(root))
    n = round((hi - lo) / step)
    digits = max(0, -math.floor(math.log10(step)))
    for i in range(n + 1):
        assert f"{lo + i * step:.{digits}f}" in labels

    # confusion.svg: the counts of metrics.json, the class names
    root = ET.parse(v / "confusion.svg").getroot()
    t = texts(root)
    for c in classes:
        assert t.count(c) == 2                 # true and predicted axes
    cells = [x for x in t if re.fullmatch(r"\d+", x)]
    assert cells == [str(n) for row in metrics["confusion_matrix"]
                     for n in row]


def test_regression_residuals_and_kmeans_clusters(mlfs, tmp_path):
    rnd = random.Random(3)
    rows = ["a,b,price"]
    for _ in range(400):
        a, b = rnd.uniform(-5, 5), rnd.uniform(0, 3)
        rows.append(f"{a:.4f},{b:.4f},{3 * a - b + rnd.gauss(0, .3):.4f}")
    (mlfs.mnt / "datasets/houses").mkdir()
    (mlfs.mnt / "datasets/houses/data.csv").write_text("\n".join(rows) + "\n")
    assert train(mlfs, "r", {"dataset": "houses", "algorithm": "linear",
                             "model": "houses", "label": "price"}) == \
        "succeeded\n"
    v = mlfs.mnt / "models/houses/v1"
    names = set(os.listdir(v))
    assert {"learning.svg", "residuals.svg"} <= names
    assert not names & {"roc.svg", "confusion.svg", "clusters.svg"}
    render(v / "residuals.svg", tmp_path)
    root = ET.parse(v / "residuals.svg").getroot()
    h = json.loads((v / "evaluation.json").read_text())["heldout"]
    both = h["y"] + h["pred"]
    p = panels(root)
    same_axis(p[0]["x"], nice_axis(min(both), max(both)))
    same_axis(p[0]["y"], p[0]["x"])            # the same scale both ways
    res = [a - b for a, b in zip(h["y"], h["pred"])]
    same_axis(p[1]["y"], nice_axis(min(min(res), 0), max(max(res), 0)))
    rmse = math.sqrt(sum(r * r for r in res) / len(res))
    assert f"RMSE {rmse:.4g}" in " ".join(texts(root))
    assert "true price" in texts(root)

    # k-means: clusters.svg, a legend entry per cluster
    rows = ["x,y,z"]
    for cx, cy in ((0, 0), (6, 6), (0, 8)):
        for _ in range(150):
            rows.append(f"{rnd.gauss(cx, 1):.3f},{rnd.gauss(cy, 1):.3f},"
                        f"{rnd.gauss(0, 1):.3f}")
    (mlfs.mnt / "datasets/pts").mkdir()
    (mlfs.mnt / "datasets/pts/data.csv").write_text("\n".join(rows) + "\n")
    assert train(mlfs, "k", {"dataset": "pts", "algorithm": "kmeans",
                             "model": "pts", "params": {"k": 3}}) == \
        "succeeded\n"
    v = mlfs.mnt / "models/pts/v1"
    assert {"learning.svg", "clusters.svg"} <= set(os.listdir(v))
    assert "roc.svg" not in os.listdir(v)
    render(v / "clusters.svg", tmp_path)
    root = ET.parse(v / "clusters.svg").getroot()
    h = json.loads((v / "evaluation.json").read_text())["heldout"]
    legend = [t for t in texts(root) if t.startswith("cluster ")]
    assert legend == [f"cluster {c} ({h['cluster'].count(c)} rows)"
                      for c in range(3)]
    # three well separated blobs: the first two components hold them
    assert sum(h["explained"]) > 0.8
    xs = [p[0] for p in h["pc"]]
    same_axis(panels(root)[0]["x"], nice_axis(min(xs), max(xs)))


def test_a_search_draws_its_trials(mlfs, tmp_path):
    iris(mlfs)
    assert train(mlfs, "plain", {"dataset": "iris", "algorithm": "logistic",
                                 "model": "p"}) == "succeeded\n"
    assert "trials.svg" not in os.listdir(mlfs.mnt / "jobs/plain")
    assert not (mlfs.mnt / "jobs/plain/trials.svg").exists()
    spec = {"dataset": "iris", "algorithm": "logistic", "model": "s",
            "search": {"method": "random", "trials": 5, "metric": "log_loss",
                       "space": {"l2": {"log_uniform": [1e-4, 10]}}}}
    assert train(mlfs, "srch", spec) == "succeeded\n"
    j = mlfs.mnt / "jobs/srch"
    assert "trials.svg" in os.listdir(j)
    render(j / "trials.svg", tmp_path)
    root = ET.parse(j / "trials.svg").getroot()
    trials = [json.loads((j / "trials" / str(i)).read_text())
              for i in range(5)]
    best = [t for t in trials if t.get("best")]
    assert len(best) == 1
    b = best[0]
    assert f"best: trial {b['trial']}, {b['metrics']['log_loss']:.4g}" in \
        texts(root)
    assert "5 trials, lower is better" in texts(root)
    vals = [t["metrics"]["log_loss"] for t in trials]
    same_axis(panels(root)[0]["y"], nice_axis(min(vals), max(vals)))
    # the final fit's metrics are the model's own, not a trial's
    names = {json.loads(l)["name"] for l in
             (j / "metrics").read_text().splitlines()}
    assert "loss" in names and "trial.loss" in names
    ev = json.loads((mlfs.mnt / "models/s/v1/evaluation.json").read_text())
    assert ev["curves"]["loss"]


def test_a_deployment_draws_its_last_day(mlfs, tmp_path):
    two_models(mlfs)
    d, r = deploy(mlfs, "web", {
        "strategy": "canary",
        "candidates": [{"model": "m@1", "weight": 80},
                       {"model": "m@2", "weight": 20}],
        "monitor": {"interval": 0.3, "window": 100}})
    assert r.returncode == 0, r.stderr
    w, h = render(d / "metrics.svg", tmp_path)   # before any interval
    assert w > 0 and h > 0
    rows = "".join(",".join(l.split(",")[:4]) + "\n"
                   for l in IRIS.splitlines()[1:80])
    for _ in range(3):
        r = subprocess.run(["bash", "-c", f"cat > {d}/predict"],
                           input=rows, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len((d / "metrics").read_text().splitlines()) >= 4:
            break
        time.sleep(0.2)
    time.sleep(0.4)       # past the picture's interval
    w, h = render(d / "metrics.svg", tmp_path)
    root = ET.parse(d / "metrics.svg").getroot()
    assert [0, 0, w, h] == viewbox(root)
    t = texts(root)
    assert "m@1" in t and "m@2" in t
    assert {"requests per interval", "latency p99", "PSI"} <= set(t)
    assert "no feedback yet" in t                # nothing labelled
    lines = [json.loads(l) for l in (d / "metrics").read_text().splitlines()]
    req = [l["requests"] for l in lines]
    same_axis(panels(root)[0]["y"][1:], nice_axis(0, max(req))[1:])


def test_plots_keep_their_model_private_and_survive_a_remount(
        mlfs_factory, tmp_path):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    iris(mlfs)
    assert train(mlfs, "j", {"dataset": "iris", "algorithm": "logistic",
                             "model": "iris"}) == "succeeded\n"
    v = mlfs.mnt / "models/iris/v1"
    before = {n: (v / n).read_bytes() for n in
              ("learning.svg", "roc.svg", "confusion.svg")}
    r = as_user(["cat", f"{v}/roc.svg"])
    assert r.returncode == 0 and "<svg" in r.stdout
    os.chmod(mlfs.mnt / "models/iris", 0o700)
    for n in before:
        r = as_user(["cat", f"{v}/{n}"])
        assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_user(["bash", "-c", f"echo x > {v}/roc.svg"])
    assert r.returncode != 0
    r = subprocess.run(["bash", "-c", f"echo x > {v}/roc.svg"],
                       capture_output=True, text=True)
    assert r.returncode != 0                     # read-only, even for root
    mlfs.stop()
    mlfs.start()
    for n, data in before.items():
        assert (v / n).read_bytes() == data      # drawn again, the same
