"""Monitoring of deployments through a real mount: reference.csv kept at
training, metrics (JSON lines, tail -f), metrics.prom (checked by
promtool), and drift checked against scipy on the same samples."""
import json
import math
import os
import random
import subprocess
import time

import numpy as np
import pytest
from scipy.stats import chi2_contingency, ks_2samp, kstwobign

from test_deployments import deploy, fsync_predict, two_models, rows
from test_train import sh, train

COLORS = ["red", "green", "blue", "grey"]


def shop(mlfs, n=600, seed=1):
    """A dataset of two numbers and a category; the label follows x1."""
    rnd = random.Random(seed)
    lines = ["x1,x2,color,label"]
    for _ in range(n):
        x1, x2 = rnd.gauss(0, 1), rnd.uniform(0, 10)
        c = rnd.choice(COLORS[:3])
        lines.append(f"{x1:.6f},{x2:.4f},{c},{'yes' if x1 > 0 else 'no'}")
    d = mlfs.mnt / "datasets/shop"
    d.mkdir()
    (d / "data.csv").write_text("\n".join(lines) + "\n")
    assert train(mlfs, "s", {"dataset": "shop", "algorithm": "logistic",
                             "model": "shop", "label": "label"}) == \
        "succeeded\n"


def live_rows(n, seed=2, shift=0.0, colors=COLORS):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(f"{rnd.gauss(shift, 1):.6f},{rnd.uniform(0, 10):.4f},"
                   f"{rnd.choice(colors)}")
    return out


def test_reference_csv_is_a_sample_of_the_training_rows(mlfs):
    shop(mlfs)
    v = mlfs.mnt / "models/shop/v1"
    ref = (v / "reference.csv").read_text().splitlines()
    assert ref[0] == "x1,x2,color,prediction"
    data = set(l.rsplit(",", 1)[0] for l in
               (mlfs.mnt / "datasets/shop/v1/data.csv").read_text()
               .splitlines()[1:])
    assert all(r.rsplit(",", 1)[0] in data for r in ref[1:])
    assert {r.rsplit(",", 1)[1] for r in ref[1:]} <= {"yes", "no"}
    # the training split's rows only
    split = (mlfs.mnt / "jobs/s/split").read_text().splitlines()
    assert len(ref) - 1 == sum(1 for l in split if l.endswith("train"))
    # at most 10,000 rows, a sample of a bigger set
    big = ["a,b,label"] + [f"{i},{i % 7},{i % 2}" for i in range(16000)]
    (mlfs.mnt / "datasets/big").mkdir()
    (mlfs.mnt / "datasets/big/data.csv").write_text("\n".join(big) + "\n")
    assert train(mlfs, "b", {"dataset": "big", "algorithm": "logistic",
                             "model": "big", "label": "label"}) == \
        "succeeded\n"
    ref = (mlfs.mnt / "models/big/v1/reference.csv").read_text().splitlines()
    assert len(ref) == 10001 and ref[0] == "a,b,prediction"
    assert len(set(ref[1:])) == 10000


def test_metrics_lines_and_prometheus(mlfs):
    two_models(mlfs)
    d, r = deploy(mlfs, "web", {
        "strategy": "canary",
        "candidates": [{"model": "m@1", "weight": 80},
                       {"model": "m@2", "weight": 20}],
        "monitor": {"interval": 0.5, "window": 100}})
    assert r.returncode == 0, r.stderr
    spec = json.loads((d / "spec").read_text())
    assert spec["monitor"] == {"interval": 0.5, "window": 100,
                               "reference": "training", "psi": 0.2,
                               "ks_p": 0.01, "chi2_p": 0.01,
                               "min_rows": 100, "min_requests": 20}
    lines = rows(mlfs, 150)
    answers = fsync_predict(d, "\n".join(lines) + "\n").splitlines()
    truth = [l.split(",")[4] for l in (mlfs.mnt / "datasets/iris/v1/data.csv")
             .read_text().splitlines()[1:151]]
    fb = "\n".join(f"{a.split(',')[0]},{t}" for a, t in zip(answers, truth))
    fb += "\nweb-999999,setosa\n" + answers[0].split(",")[0] + ",setosa"
    assert sh(f"cat > {d}/feedback", input=fb + "\n").returncode == 0
    deadline = time.monotonic() + 10
    got = []
    while time.monotonic() < deadline and \
            sum(o["requests"] for o in got) < 150:
        time.sleep(0.3)
        got = [json.loads(l) for l in (d / "metrics").read_text()
               .splitlines()]
    assert sum(o["requests"] for o in got) == 150, got
    assert {o["candidate"] for o in got} == {"m@1", "m@2"}
    first = [o for o in got if o["requests"]][0]
    assert set(first) >= {"time", "candidate", "requests", "errors",
                          "latency_us", "traffic_share", "accuracy",
                          "feedback", "feedback_coverage", "drift"}
    assert set(first["latency_us"]) == {"p50", "p95", "p99"}
    assert first["latency_us"]["p50"] <= first["latency_us"]["p99"]
    assert first["drift"]["window"] == 100
    got = wait_for(lambda: [json.loads(l) for l in (d / "metrics")
                            .read_text().splitlines()]
                   if sum(json.loads(l)["feedback"] for l in (d / "metrics")
                          .read_text().splitlines()) == 150 else None)
    assert sum(o["feedback"] for o in got) == 150
    # unknown and repeated ids: the deployment's, in each line
    assert max(o["feedback_unknown"] for o in got) == 1
    assert max(o["feedback_repeated"] for o in got) == 1
    acc = [o["accuracy"] for o in got if o["feedback"]]
    assert all(0.5 < a <= 1 for a in acc)
    # its true size, without the page cache: tail -c follows it
    assert os.stat(d / "metrics").st_size == \
        len((d / "metrics").read_bytes())
    prom = (d / "metrics.prom").read_text()
    r = subprocess.run(["promtool", "check", "metrics"], input=prom,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr + prom
    assert 'mlfs_deployment_requests_total{deployment="web",model="m",' \
           'version="1"}' in prom
    total = sum(int(l.split()[-1]) for l in prom.splitlines()
                if l.startswith("mlfs_deployment_requests_total{"))
    assert total == 150
    assert "mlfs_deployment_request_duration_seconds_bucket{" in prom
    assert 'mlfs_deployment_drift_psi{deployment="web",feature=' \
           '"sepal_length"}' in prom
    assert 'mlfs_deployment_feedback_unmatched_total{deployment="web",' \
           'reason="unknown"} 1' in prom


def psi(ref, live, cuts=None, cats=None):
    """PSI as DESIGN.md defines it, computed here with numpy."""
    if cats is None:
        cuts = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
        rb = np.bincount(np.searchsorted(cuts, ref, side="left"),
                         minlength=len(cuts) + 1)
        lb = np.bincount(np.searchsorted(cuts, live, side="left"),
                         minlength=len(cuts) + 1)
    else:
        keys = sorted(set(ref))
        rb = np.array([ref.count(k) for k in keys] + [0])
        lb = np.array([live.count(k) for k in keys] +
                      [sum(1 for v in live if v not in keys)])
    e = np.maximum(rb / rb.sum(), 1e-4)
    a = np.maximum(lb / lb.sum(), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def test_drift_agrees_with_scipy(mlfs):
    shop(mlfs)
    d, r = deploy(mlfs, "shop", {"candidates": ["shop@1"],
                                 "monitor": {"window": 500}})
    assert r.returncode == 0, r.stderr
    live = live_rows(700, shift=0.5)
    fsync_predict(d, "\n".join(live) + "\n")
    drift = json.loads((d / "drift").read_text())
    assert drift["window"] == 500 and drift["reference"] == "training"
    feats = {f["name"]: f for f in drift["features"]}
    ref = [l.split(",") for l in (mlfs.mnt / "models/shop/v1/reference.csv")
           .read_text().splitlines()[1:]]
    win = [l.split(",") for l in live[-500:]]
    for i, name in enumerate(["x1", "x2"]):
        a = np.array([float(r[i]) for r in ref])
        b = np.array([float(w[i]) for w in win])
        f = feats[name]
        assert f["type"] == "numeric" and f["rows"] == 500
        ks = ks_2samp(a, b)
        assert abs(f["ks"] - ks.statistic) < 1e-9, (name, f, ks)
        n, m = len(a), len(b)
        p = kstwobign.sf(math.sqrt(n * m / (n + m)) * ks.statistic)
        assert abs(f["ks_p"] - p) < 1e-6, (name, f["ks_p"], p)
        assert abs(f["psi"] - psi(a, b)) < 1e-9, name
    # x1 moved by half a standard deviation; x2 did not
    assert feats["x1"]["ks_p"] < 0.001 < feats["x2"]["ks_p"]
    # the category: chi-squared of reference against live, "other"
    # for grey, which training never saw
    rc = [r[2] for r in ref]
    lc = [w[2] for w in win]
    keys = sorted(set(rc))
    table = np.array([[rc.count(k) for k in keys] + [0],
                      [lc.count(k) for k in keys] +
                      [sum(1 for c in lc if c not in keys)]])
    table = table[:, table.sum(axis=0) > 0]
    chi, p, dof, _ = chi2_contingency(table, correction=False)
    f = feats["color"]
    assert f["type"] == "categorical" and f["dof"] == dof
    assert abs(f["chi2"] - chi) < 1e-9 and abs(f["chi2_p"] - p) < 1e-6
    assert abs(f["psi"] - psi(rc, lc, cats=True)) < 1e-9
    # the prediction, against the answers training gave its rows
    assert feats["prediction"]["type"] == "categorical"
    assert feats["prediction"]["rows"] == 500


def test_monitor_off(mlfs):
    two_models(mlfs)
    d, r = deploy(mlfs, "quiet", {"candidates": ["m@1"], "monitor": False})
    assert r.returncode == 0, r.stderr
    fsync_predict(d, "\n".join(rows(mlfs, 10)) + "\n")
    time.sleep(1.5)
    assert (d / "metrics").read_text() == ""
    assert json.loads((d / "drift").read_text()) == {"monitor": False}
    assert "mlfs_deployment_requests_total" in (d / "metrics.prom").read_text()


@pytest.mark.parametrize("monitor,field", [
    ({"interval": 0}, "interval"),
    ({"interval": "soon"}, "interval"),
    ({"window": 3}, "window"),
    ({"reference": 5}, "reference"),
    ({"psi": -1}, "psi"),
    ({"ks_p": 2}, "ks_p"),
    ({"bogus": 1}, "bogus"),
    ("yes", "monitor"),
])
def test_bad_monitor_fails_the_write(mlfs, monitor, field):
    two_models(mlfs)
    d, r = deploy(mlfs, "bad", {"candidates": ["m@1"], "monitor": monitor})
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert f'"{field}"' in mlfs.errors().splitlines()[-1] or \
        field in mlfs.errors().splitlines()[-1]


def promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr + text


def sample_value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in\n{text}")


def test_daemon_metrics_prom(mlfs, mlfs_factory, s3server):
    two_models(mlfs)
    text = (mlfs.mnt / ".mlfs/metrics.prom").read_text()
    promtool(text)
    assert sample_value(text, 'mlfs_jobs{state="ended"}') == 2
    assert sample_value(text, 'mlfs_fuse_operations_total{op="write"}') > 0
    assert sample_value(text, "mlfs_versions_created_total") >= 3
    # on S3: the requests, the cache and the export queue too
    from test_s3 import s3mount
    w = s3mount(mlfs_factory, s3server, sub="s3")
    (w.mnt / "datasets/d").mkdir()
    (w.mnt / "datasets/d/data.csv").write_text("a,b\n1,2\n")
    (w.mnt / ".mlfs/cache").write_text("sync\n")
    text = (w.mnt / ".mlfs/metrics.prom").read_text()
    promtool(text)
    assert sample_value(text, "mlfs_s3_requests_total") > 0
    assert sample_value(text, "mlfs_export_queue") == 0
    assert sample_value(text, "mlfs_exports_total") > 0


def wait_for(fn, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    return fn()


def alert_lines(d):
    return [json.loads(l) for l in (d / "alerts").read_text().splitlines()]


def test_alerts_and_the_closed_loop(mlfs):
    """Shifted inputs raise a drift alert; its retrain job runs as the
    spec's writer and its version enters as a canary; nothing fires
    twice; the alerts survive a remount."""
    shop(mlfs)
    d, r = deploy(mlfs, "shop", {
        "candidates": ["shop@1"],
        "monitor": {"interval": 0.3, "window": 200, "ks_p": 1e-6,
                    "chi2_p": 1e-6, "psi": 0.5},
        "on_alert": {"retrain": {"dataset": "shop", "algorithm": "logistic",
                                 "label": "label"},
                     "then": "canary 10"}})
    assert r.returncode == 0, r.stderr
    fsync_predict(d, "\n".join(live_rows(300, seed=3, colors=COLORS[:3])) +
                  "\n")
    assert wait_for(lambda: (d / "metrics").read_text().count("\n") >= 2)
    time.sleep(1.2)
    assert alert_lines(d) == []          # the same distribution: quiet
    fsync_predict(d, "\n".join(live_rows(300, seed=4, shift=3,
                                         colors=COLORS[:3])) + "\n")
    entered = wait_for(lambda: [a for a in alert_lines(d)
                                if a.get("step") == "entered"], 120)
    assert entered, alert_lines(d)
    got = alert_lines(d)
    raised = [a for a in got if a.get("state") == "raised"]
    assert {"psi", "ks_p"} <= {a["rule"] for a in raised if
                               a["subject"] == "x1"}, got
    x1 = [a for a in raised if a["rule"] == "psi"][0]
    assert x1["value"] > 0.5 and x1["threshold"] == 0.5
    assert x1["window"] == 200
    steps = [a["step"] for a in got if "step" in a]
    assert steps == ["retrain", "retrained", "entered"], got
    assert entered[0]["detail"] == "shop@2 as canary 10"
    job = [a for a in got if a.get("step") == "retrain"][0]["job"]
    assert job == "shop-retrain-1"
    assert (mlfs.mnt / f"jobs/{job}/status").read_text() == "succeeded\n"
    assert os.readlink(d / "latest") == "v2"
    spec = json.loads((d / "spec").read_text())
    assert spec["strategy"] == "canary"
    assert spec["candidates"] == [{"model": "shop@1", "weight": 90},
                                  {"model": "shop@2", "weight": 10}]
    assert spec["on_alert"]["then"] == "canary 10"
    traffic = (d / "traffic").read_text()
    assert "shop@2 10 " in traffic, traffic
    log = (d / "log").read_text()
    assert "alert raised: psi of x1" in log and "entered: shop@2" in log
    # nothing fires twice for one alert
    time.sleep(1.5)
    assert [a.get("step") for a in alert_lines(d) if "step" in a] == steps
    before = (d / "alerts").read_text()
    mlfs.restart()
    assert (d / "alerts").read_text() == before


def test_alert_rules_of_candidates(mlfs):
    """error_rate over its threshold raises, and clears when it falls."""
    shop(mlfs)
    d, r = deploy(mlfs, "err", {
        "candidates": ["shop@1"],
        "monitor": {"interval": 0.3, "error_rate": 0.2, "min_requests": 10,
                    "ks_p": 1e-9, "chi2_p": 1e-9, "psi": 100}})
    assert r.returncode == 0, r.stderr
    bad = ["x,1,red"] * 20 + live_rows(10, seed=5)
    fsync_predict(d, "\n".join(bad) + "\n")
    got = wait_for(lambda: [a for a in alert_lines(d)
                            if a.get("rule") == "error_rate"])
    assert got and got[0]["state"] == "raised", alert_lines(d)
    assert got[0]["subject"] == "shop@1"
    assert abs(got[0]["value"] - 20 / 30) < 1e-9
    fsync_predict(d, "\n".join(live_rows(40, seed=6)) + "\n")
    cleared = wait_for(lambda: [a for a in alert_lines(d)
                                if a.get("state") == "cleared"])
    assert cleared and cleared[0]["rule"] == "error_rate", alert_lines(d)
    assert not any("step" in a for a in alert_lines(d))


def test_grafana_dashboard_names_only_metrics_that_exist(mlfs):
    """examples/grafana-mlfs.json is JSON, and every metric its queries
    name is in a deployment's metrics.prom or the daemon's."""
    import re
    from pathlib import Path
    dash = json.loads((Path(__file__).parents[2] /
                       "examples/grafana-mlfs.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    two_models(mlfs)
    d, r = deploy(mlfs, "g", {"candidates": ["m@1"], "shadow": "m@2"})
    assert r.returncode == 0, r.stderr
    fsync_predict(d, "\n".join(rows(mlfs, 20)) + "\n")
    prom = (d / "metrics.prom").read_text() + \
        (mlfs.mnt / ".mlfs/metrics.prom").read_text()
    promtool((d / "metrics.prom").read_text())
    have = {l.split("{")[0].split()[0] for l in prom.splitlines()
            if l and not l.startswith("#")}
    named = set(re.findall(r"\bmlfs_[a-z0-9_]+", " ".join(exprs)))
    assert named and named <= have, sorted(named - have)


def test_the_loop_runs_as_the_writer(mlfs_factory):
    """A deployment nobody made retrains as nobody: the job and the new
    version are nobody's; root's rights are never lent."""
    from conftest import as_user
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    data = mlfs.tmp / "shop.csv"
    rnd = random.Random(7)
    lines = ["x1,x2,color,label"]
    for _ in range(400):
        x1 = rnd.gauss(0, 1)
        lines.append(f"{x1:.6f},{rnd.uniform(0, 10):.4f},red,"
                     f"{'yes' if x1 > 0 else 'no'}")
    data.write_text("\n".join(lines) + "\n")
    rows_file = mlfs.tmp / "rows.csv"
    rows_file.write_text("\n".join(live_rows(300, seed=8, shift=3,
                                             colors=["red"])) + "\n")
    os.chmod(data, 0o644)
    os.chmod(rows_file, 0o644)
    m = mlfs.mnt
    spec = json.dumps({
        "candidates": ["nshop@1"],
        "monitor": {"interval": 0.3, "window": 200, "psi": 0.5},
        "on_alert": {"retrain": {"dataset": "nshop", "algorithm": "logistic",
                                 "label": "label"}}})
    r = as_user(["bash", "-ec", f"""
        mkdir {m}/datasets/nshop
        cp {data} {m}/datasets/nshop/data.csv
        echo '{{"dataset": "nshop", "algorithm": "logistic", "model": "nshop", "label": "label"}}' > {m}/train/n1.json
        cat {m}/jobs/n1/wait
        mkdir {m}/deployments/nd
        echo '{spec}' > {m}/deployments/nd/spec
        cp {rows_file} {m}/deployments/nd/predict
    """], timeout=120)
    assert r.returncode == 0, r.stderr
    d = m / "deployments/nd"
    entered = wait_for(lambda: [a for a in alert_lines(d)
                                if a.get("step") == "entered"], 120)
    assert entered, alert_lines(d)
    assert os.stat(m / "jobs/nd-retrain-1").st_uid == 65534
    assert os.stat(m / "models/nshop/v2/model").st_uid == 65534
    assert '"nshop"' in (m / "jobs/nd-retrain-1/spec").read_text()
    assert "uid 65534" in [a for a in alert_lines(d)
                           if a.get("step") == "retrain"][0]["detail"]
    # others read the alerts and metrics; only the owner's group the log
    # of inputs
    r = as_user(["cat", f"{d}/alerts"], uid=1234, gid=1234)
    assert r.returncode == 0 and "entered" in r.stdout
    r = as_user(["cat", f"{d}/predictions"], uid=1234, gid=1234)
    assert r.returncode != 0
    # a reference nobody may not read: drift would tell its distribution
    (m / "datasets/secret").mkdir()
    (m / "datasets/secret/data.csv").write_text(data.read_text())
    os.chmod(m / "datasets/secret", 0o700)
    spec = json.dumps({"candidates": ["nshop@1"],
                       "monitor": {"reference": "secret@1"}})
    r = as_user(["bash", "-c", f"echo '{spec}' > {d}/spec"])
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_a_dataset_version_as_the_reference(mlfs):
    shop(mlfs)
    d, r = deploy(mlfs, "ds", {"candidates": ["shop@1"],
                               "monitor": {"window": 100,
                                           "reference": "shop@1"}})
    assert r.returncode == 0, r.stderr
    fsync_predict(d, "\n".join(live_rows(100, shift=2)) + "\n")
    feats = {f["name"]: f for f in
             json.loads((d / "drift").read_text())["features"]}
    assert feats["x1"]["reference_rows"] == 600
    ref = [float(l.split(",")[0]) for l in
           (mlfs.mnt / "datasets/shop/v1/data.csv").read_text()
           .splitlines()[1:]]
    live = [float(l.split(",")[0]) for l in live_rows(100, shift=2)]
    assert abs(feats["x1"]["ks"] - ks_2samp(ref, live).statistic) < 1e-9
    assert feats["prediction"] == {"name": "prediction", "compared": False}
    # a dataset that does not exist is refused at the write
    d, r = deploy(mlfs, "ds2", {"candidates": ["shop@1"],
                                "monitor": {"reference": "nope@1"}})
    assert r.returncode != 0 and "Invalid argument" in r.stderr
