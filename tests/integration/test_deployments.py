"""deployments/: a kind whose versions are spec revisions, routed predict
with request ids, the prediction store, feedback, the controls and the
rollback rule, driven through a real mount with shell tools."""
import errno
import json
import os
import subprocess

import pytest

from conftest import as_user
from test_train import iris, sh, train

M64 = (1 << 64) - 1


def splitmix64(x):
    """(next state, draw), as deploy.c draws a row's numbers."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def canary_route(seed, k, weights):
    """The candidate deploy.c routes the k-th row of a revision to."""
    x = seed ^ ((k * 0x9E3779B97F4A7C15) & M64)
    _, z = splitmix64(x)
    u = (z >> 11) * 2.0 ** -53
    total, run = sum(weights), 0.0
    for i, w in enumerate(weights[:-1]):
        run += w
        if u * total < run:
            return i
    return len(weights) - 1


def two_models(mlfs):
    """Two versions of model m on iris (v1, and v2 with more l2)."""
    iris(mlfs)
    assert train(mlfs, "a", {"dataset": "iris", "algorithm": "logistic",
                             "model": "m"}) == "succeeded\n"
    assert train(mlfs, "b", {"dataset": "iris", "algorithm": "logistic",
                             "model": "m", "params": {"l2": 0.5}}) \
        == "succeeded\n"


def deploy(mlfs, name, spec):
    d = mlfs.mnt / "deployments" / name
    if not d.exists():
        d.mkdir()
    r = sh(f"cat > {d}/spec", input=json.dumps(spec))
    return d, r


def rows(mlfs, n):
    """n iris feature rows (the dataset's own), without a header."""
    lines = (mlfs.mnt / "datasets/iris/v1/data.csv").read_text().splitlines()
    out = []
    for i in range(n):
        out.append(",".join(lines[1 + i % (len(lines) - 1)].split(",")[:4]))
    return out


def log_lines(d, kind=None):
    text = (d / "predictions").read_text()
    out = [json.loads(l) for l in text.splitlines()]
    return [o for o in out if kind is None or o["kind"] == kind]


def fsync_predict(d, text):
    """Score text on one handle, fsync it, and return the answers."""
    fd = os.open(d / "predict", os.O_RDWR)
    try:
        os.write(fd, text.encode())
        out = b""
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            out += b
        os.fsync(fd)
    finally:
        os.close(fd)
    return out.decode()


def test_kind_spec_revisions_and_busy(mlfs):
    two_models(mlfs)
    d, r = deploy(mlfs, "web", {"candidates": ["m@1"]})
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(d)) == sorted(
        ["spec", "predict", "feedback", "predictions", "metrics",
         "metrics.prom", "metrics.svg", "drift", "alerts", "traffic",
         "ctl", "status", "log", "v1", "latest"])
    spec = json.loads((d / "spec").read_text())
    assert spec["strategy"] == "single"
    assert spec["candidates"] == [{"model": "m@1", "weight": 100}]
    assert json.loads((d / "v1/spec").read_text()) == spec
    # the same spec again makes no revision; a new one does
    deploy(mlfs, "web", {"candidates": ["m@1"]})
    assert not (d / "v2").exists()
    _, r = deploy(mlfs, "web", {"strategy": "canary", "candidates": [
        {"model": "m@1", "weight": 90}, {"model": "m", "weight": 10}]})
    assert r.returncode == 0, r.stderr
    assert os.readlink(d / "latest") == "v2"
    assert "revision 2: canary" in (d / "log").read_text()
    # the versions it serves stay; another may go
    r = sh(f"rmdir {mlfs.mnt}/models/m/v2")
    assert r.returncode != 0 and "busy" in r.stderr.lower()
    assert "deployment web was serving v2" in mlfs.errors()
    # the revisions survive a remount
    mlfs.restart()
    assert os.readlink(d / "latest") == "v2"
    assert (d / "status").read_text() == "serving\n"
    fsync_predict(d, rows(mlfs, 1)[0] + "\n")
    assert list((mlfs.store / "deployments/web").rglob("*.jsonl"))
    sh(f"rmdir {d}")
    assert not d.exists()
    assert sh(f"rmdir {mlfs.mnt}/models/m/v2").returncode == 0
    # what it logged went with it; made again, it starts afresh
    assert not list((mlfs.store / "deployments/web").rglob("*.jsonl")) \
        if (mlfs.store / "deployments/web").exists() else True
    d.mkdir()
    deploy(mlfs, "web", {"candidates": ["m@1"]})
    assert (d / "predictions").read_text() == ""
    assert fsync_predict(d, rows(mlfs, 1)[0] + "\n").startswith("web-1,")


BAD_SPECS = [
    ("{\"candidates\": []}", "candidates", "a list of one model or more"),
    ("{\"strategy\": \"fastest\", \"candidates\": [\"m@1\"]}", "strategy",
     "must be single, blue-green"),
    ("{\"candidates\": [\"m@1\", \"m@2\"]}", "candidates",
     "several candidates need a \"strategy\""),
    ("{\"strategy\": \"blue-green\", \"candidates\": [\"m@1\"]}",
     "candidates", "blue-green takes 2 candidates, not 1"),
    ("{\"strategy\": \"canary\", \"candidates\": [\"m@1\", \"m@2\"]}",
     "m@1", "a canary candidate needs a \"weight\""),
    ("{\"strategy\": \"canary\", \"candidates\": [{\"model\": \"m@1\", "
     "\"weight\": 0}, {\"model\": \"m@2\", \"weight\": 0}]}", "candidates",
     "the weights add up to 0"),
    ("{\"candidates\": [\"../m\"]}", "../m", "must be a model as name"),
    ("{\"candidates\": [\"nope@1\"]}", "nope@1", "no model \"nope\""),
    ("{\"candidates\": [\"m@9\"]}", "m@9", "model \"m\" has no version 9"),
    ("{\"candidates\": [\"m@prod\"]}", "m@prod", "has no such alias"),
    ("{\"candidates\": [\"m@1\"], \"speed\": 3}", "speed", "unknown field"),
    ("{\"candidates\": [\"m@1\"], \"epsilon\": 0.2}", "epsilon",
     "only epsilon-greedy takes it"),
    ("{\"candidates\": [\"m@1\"], \"rollback\": {}}", "rollback",
     "names no rule"),
    ("{\"candidates\": [\"m@1\"], \"rollback\": {\"error_rate\": 2}}",
     "error_rate", "must be a number from 0 to 1"),
    ("{\"strategy\": \"canary\", \"candidates\": [{\"model\": \"m@1\", "
     "\"weight\": 1}, {\"model\": \"m@1\", \"weight\": 1}]}", "m@1",
     "named twice"),
    ("{\"candidates\": [\"m@1\"], \"seed\": -1}", "seed",
     "must be a whole number"),
    ("{\"candidates\": [\"m@1\"],\n \"shadow\": 5}", "shadow",
     "must be a model"),
    ("{\"candidates\": [\"m@1\"", None, ""),
]


@pytest.mark.parametrize("text,field,msg", BAD_SPECS)
def test_bad_specs_fail_the_write(mlfs, text, field, msg):
    if not (mlfs.mnt / "models/m").exists():
        two_models(mlfs)
    d, _ = deploy(mlfs, "web", {"candidates": ["m@1"]})
    r = sh(f"cat > {d}/spec", input=text)
    assert r.returncode != 0, text
    assert "Invalid argument" in r.stderr
    err = mlfs.errors().splitlines()[-1]
    assert "deployments/web/spec:" in err
    if field:
        line = text[:text.index(f'"{field}"')].count("\n") + 1
        assert f"spec:{line}:" in err, err
    assert msg in err, err
    assert not (d / "v2").exists()


def test_candidates_must_be_alike(mlfs):
    two_models(mlfs)
    (mlfs.mnt / "datasets/two").mkdir()
    src = (mlfs.mnt / "datasets/iris/v1/data.csv").read_text().splitlines()
    (mlfs.mnt / "datasets/two/data.csv").write_text(
        "\n".join([src[0]] + [l for l in src[1:] if "virginica" not in l])
        + "\n")
    assert train(mlfs, "c", {"dataset": "two", "algorithm": "logistic",
                             "model": "n"}) == "succeeded\n"
    _, r = deploy(mlfs, "web", {"strategy": "canary", "candidates": [
        {"model": "m@1", "weight": 1}, {"model": "n@1", "weight": 1}]})
    assert r.returncode != 0
    assert "different classes" in mlfs.errors().splitlines()[-1]
    assert train(mlfs, "e", {"dataset": "iris", "algorithm": "logistic",
                             "model": "k", "features": ["petal_length",
                                                        "petal_width"]}) \
        == "succeeded\n"
    _, r = deploy(mlfs, "web", {"strategy": "shadow",
                                "candidates": ["m@1", "k@1"]})
    assert r.returncode != 0
    assert "inputs, not" in mlfs.errors().splitlines()[-1]


def test_sample_that_does_not_reproduce_is_refused(mlfs):
    """A candidate whose sample.csv no longer matches what it answers
    (here: the stored sample edited in the store, as a model file
    trained by another build of a plugin would be) fails the spec
    write, naming the row."""
    two_models(mlfs)
    man = json.loads((mlfs.store / "models/m/v1.json").read_text())
    h = man["files"]["sample.csv"]["hash"]
    blob = mlfs.store / "blobs" / h[:2] / h
    lines = blob.read_text().splitlines()
    f = lines[3].split(",")
    f[-1] = str(round(float(f[-1]) + 0.01, 6))
    lines[3] = ",".join(f)
    blob.write_text("\n".join(lines) + "\n")
    _, r = deploy(mlfs, "web", {"candidates": ["m@1"]})
    assert r.returncode != 0
    err = mlfs.errors().splitlines()[-1]
    assert "sample.csv row 3" in err, err


def test_canary_routes_as_recorded_with_ids_and_log(mlfs):
    two_models(mlfs)
    d, r = deploy(mlfs, "web", {"strategy": "canary", "seed": 11,
                                "candidates": [{"model": "m@1", "weight": 70},
                                               {"model": "m@2",
                                                "weight": 30}]})
    assert r.returncode == 0, r.stderr
    n = 200
    out = fsync_predict(d, "\n".join(rows(mlfs, n)) + "\n").splitlines()
    assert [l.split(",")[0] for l in out] == [f"web-{i}"
                                              for i in range(1, n + 1)]
    log = log_lines(d, "prediction")
    assert [o["id"] for o in log] == [f"web-{i}" for i in range(1, n + 1)]
    want = [["m@1", "m@2"][canary_route(11, k, [70, 30])] for k in range(n)]
    assert [o["candidate"] for o in log] == want
    assert 0.55 < want.count("m@1") / n < 0.85
    o = log[0]
    assert set(o) == {"kind", "id", "time", "revision", "candidate",
                      "inputs", "output", "latency_us"}
    assert o["revision"] == 1 and o["output"]["prediction"] in (
        "setosa", "versicolor", "virginica")
    assert list(o["inputs"]) == ["sepal_length", "sepal_width",
                                 "petal_length", "petal_width"]
    # each answer is its candidate's: the model's own predict agrees
    first = rows(mlfs, 1)[0]
    alone = sh(f"echo {first} > {mlfs.mnt}/models/m/v{want[0][-1]}/predict;"
               f" cat {mlfs.mnt}/models/m/v{want[0][-1]}/predict").stdout
    assert out[0] == "web-1," + alone.strip()
    traffic = (d / "traffic").read_text().splitlines()
    assert traffic == [f"m@1 70 {want.count('m@1')}",
                       f"m@2 30 {want.count('m@2')}"]
    # a row with an id keeps it; JSON answers carry "id"
    r = sh(f"printf 'id,{','.join(['sepal_length', 'sepal_width', 'petal_length', 'petal_width'])}\\nc7,{first}\\n' > {d}/predict; cat {d}/predict")
    assert r.stdout.startswith("c7,"), r.stdout
    js = json.dumps(dict(zip(["sepal_length", "sepal_width",
                              "petal_length", "petal_width"],
                             map(float, first.split(",")))))
    r = sh(f"echo '{js}' > {d}/predict; cat {d}/predict")
    assert json.loads(r.stdout)["id"] == f"web-{n + 1}"
    # traffic moves atomically, and ids continue across a remount
    r = sh(f"printf 'm@1 0\\nm@2 5\\n' > {d}/traffic")
    assert r.returncode == 0, r.stderr
    assert (d / "traffic").read_text().splitlines()[0].startswith("m@1 0 ")
    r = sh(f"echo 'm@3 5' > {d}/traffic")
    assert r.returncode != 0 and "not a candidate" in mlfs.errors()
    mlfs.restart()
    out = fsync_predict(d, first + "\n")
    assert out.startswith(f"web-{n + 2},"), out
    assert log_lines(d, "prediction")[-1]["candidate"] == "m@2"
    assert "traffic: m@1 0, m@2 5" in (d / "log").read_text()


def test_feedback_blue_green_promote_and_rollback(mlfs):
    two_models(mlfs)
    d, r = deploy(mlfs, "bg", {"strategy": "blue-green",
                               "candidates": ["m@1", "m@2"],
                               "rollback": {"accuracy_below": 0.8,
                                            "min_requests": 50}})
    assert r.returncode == 0, r.stderr
    out = fsync_predict(d, "\n".join(rows(mlfs, 10)) + "\n")
    assert all(o["candidate"] == "m@1" for o in log_lines(d, "prediction"))
    assert sh(f"echo promote > {d}/ctl").returncode == 0
    assert (d / "traffic").read_text().splitlines() == ["m@1 0 10",
                                                        "m@2 100 0"]
    out = fsync_predict(d, "\n".join(rows(mlfs, 100)) + "\n").splitlines()
    classes = ["setosa", "versicolor", "virginica"]
    fb = []
    for i, line in enumerate(out):
        rid, pred = line.split(",")[:2]
        # right 70% of the time: below 0.8
        truth = pred if i % 10 < 7 else classes[(classes.index(pred) + 1)
                                                  % 3]
        fb.append(f"{rid},{truth}")
    # the first 49 labels leave it serving
    r = sh(f"cat > {d}/feedback", input="id,truth\n" + "\n".join(fb[:49])
           + "\n")
    assert r.returncode == 0, r.stderr
    assert (d / "status").read_text() == "serving\n"
    r = sh(f"cat > {d}/feedback", input="\n".join(fb[49:]) + "\n")
    assert r.returncode == 0, r.stderr
    st = (d / "status").read_text()
    assert st.startswith("rolled back: m@2 accuracy 0.7") and "< 0.8" in st
    assert (d / "traffic").read_text().splitlines()[0] == "m@1 100 10"
    assert "rolled back: m@2" in (d / "log").read_text()
    fbl = log_lines(d, "feedback")
    assert len(fbl) == 100 and fbl[0]["id"] == out[0].split(",")[0]
    # unknown and repeated ids are counted
    r = sh(f"cat > {d}/feedback", input=f"{fb[0]}\nbg-99999,setosa\n")
    assert r.returncode == 0, r.stderr
    assert (d / "feedback").read_text() == \
        "received 102\nlabelled 100\nunknown 1\nrepeated 1\n"
    # the next rows go to blue; a bad feedback row takes none of its write
    out = fsync_predict(d, rows(mlfs, 1)[0] + "\n")
    assert log_lines(d, "prediction")[-1]["candidate"] == "m@1"
    r = sh(f"cat > {d}/feedback", input="bg-1,setosa\nbg-2\n")
    assert r.returncode != 0
    assert "feedback:2:1: expected id,truth" in mlfs.errors()
    assert len(log_lines(d, "feedback")) == 102
    # ctl: its words, and pause
    assert sh(f"echo launch > {d}/ctl").returncode != 0
    assert sh(f"echo pause > {d}/ctl").returncode == 0
    assert (d / "status").read_text() == "paused\n"
    r = sh(f"echo {rows(mlfs, 1)[0]} > {d}/predict; cat {d}/predict")
    assert r.stdout == "error: paused\n"
    assert sh(f"echo resume > {d}/ctl").returncode == 0
    # the state survives a remount, and so do the counters
    mlfs.restart()
    assert (d / "status").read_text().startswith("rolled back: m@2")
    assert (d / "traffic").read_text().splitlines() == ["m@1 100 11",
                                                        "m@2 0 100"]
    assert (d / "feedback").read_text() == \
        "received 102\nlabelled 100\nunknown 1\nrepeated 1\n"


def bandit_share(mlfs, strategy, extra):
    d, r = deploy(mlfs, strategy, {"strategy": strategy, "seed": 5,
                                   "candidates": ["m@1", "m@2"], **extra})
    assert r.returncode == 0, r.stderr
    classes = ["setosa", "versicolor", "virginica"]
    got = []
    for batch in range(40):
        out = fsync_predict(d, "\n".join(rows(mlfs, 10)) + "\n")
        log = log_lines(d, "prediction")[-10:]
        fb = []
        for line, o in zip(out.splitlines(), log):
            rid, pred = line.split(",")[:2]
            # m@2 is always right, m@1 right half the time
            good = o["candidate"] == "m@2" or int(rid.rsplit("-", 1)[1]) % 2
            fb.append(f"{rid},{pred if good else classes[(classes.index(pred) + 1) % 3]}")
            got.append(o["candidate"])
        r = sh(f"cat > {d}/feedback", input="\n".join(fb) + "\n")
        assert r.returncode == 0, r.stderr
    return got[-200:].count("m@2") / 200


def test_bandits_learn_from_feedback(mlfs):
    two_models(mlfs)
    assert bandit_share(mlfs, "epsilon-greedy", {"epsilon": 0.1}) >= 0.8
    assert bandit_share(mlfs, "thompson", {}) >= 0.8


def test_shadow_is_logged_and_never_answers(mlfs):
    two_models(mlfs)
    d, r = deploy(mlfs, "sh", {"strategy": "shadow",
                               "candidates": ["m@1", "m@2"]})
    assert r.returncode == 0, r.stderr
    out = fsync_predict(d, "\n".join(rows(mlfs, 5)) + "\n").splitlines()
    log = log_lines(d)
    assert [o["kind"] for o in log] == ["prediction", "shadow"] * 5
    assert all(o["candidate"] == "m@1" for o in log[::2])
    assert all(o["candidate"] == "m@2" for o in log[1::2])
    assert [o["id"] for o in log[::2]] == [l.split(",")[0] for l in out]
    assert [o["id"] for o in log[1::2]] == [l.split(",")[0] for l in out]
    assert (d / "traffic").read_text().splitlines() == ["m@1 100 5",
                                                        "m@2 0 0"]
    # a shadow beside a canary
    _, r = deploy(mlfs, "sh", {"strategy": "single", "candidates": ["m@1"],
                               "shadow": "m@2"})
    assert r.returncode == 0, r.stderr
    fsync_predict(d, rows(mlfs, 1)[0] + "\n")
    assert (d / "traffic").read_text().splitlines() == ["m@1 100 1",
                                                        "m@2 shadow 1"]


def test_durable_after_close_and_feedback_write(mlfs):
    """kill -9 loses no prediction whose handle was closed and no
    feedback whose write returned."""
    two_models(mlfs)
    d, r = deploy(mlfs, "web", {"candidates": ["m@1"]})
    out = sh(f"echo {rows(mlfs, 1)[0]} > {d}/predict; cat {d}/predict")
    rid = out.stdout.split(",")[0]
    assert sh(f"echo {rid},setosa > {d}/feedback").returncode == 0
    mlfs.kill9()
    mlfs.start()
    log = log_lines(d)
    assert [o["kind"] for o in log] == ["prediction", "feedback"]
    assert log[0]["id"] == rid == log[1]["id"]
    # ids are never handed out twice, even after a crash
    out = sh(f"echo {rows(mlfs, 1)[0]} > {d}/predict; cat {d}/predict")
    assert out.stdout.split(",")[0] != rid


def test_s3_keeps_it_and_a_reader_serves_without_logging(mlfs_factory,
                                                         s3server):
    """On S3 the revisions, state and prediction store are in the
    bucket: a second mount (a reader while the first writes) serves
    predict by the last spec, logs nothing, and refuses the controls
    and feedback with EROFS."""
    from test_s3 import s3mount
    w = s3mount(mlfs_factory, s3server, sub="w")
    two_models(w)
    d, r = deploy(w, "web", {"candidates": ["m@1"]})
    assert r.returncode == 0, r.stderr
    fsync_predict(d, rows(w, 1)[0] + "\n")
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    ro = s3mount(mlfs_factory, s3server, sub="r", prefix=w.prefix)
    rd = ro.mnt / "deployments/web"
    out = sh(f"echo {rows(ro, 1)[0]} > {rd}/predict; cat {rd}/predict")
    assert out.stdout.startswith("web-") and out.stdout.count(",") == 4, out
    assert [o["id"] for o in log_lines(rd)] == ["web-1"]
    for f, text in (("feedback", "web-1,setosa"), ("traffic", "m@1 1"),
                    ("ctl", "pause")):
        r = sh(f"echo {text} > {rd}/{f}")
        assert r.returncode != 0 and "Read-only" in r.stderr, (f, r.stderr)
    ro.stop()
    # a fresh mount of the bucket alone has it all
    w.stop()
    again = s3mount(mlfs_factory, s3server, sub="a", prefix=w.prefix)
    ad = again.mnt / "deployments/web"
    assert os.readlink(ad / "latest") == "v1"
    assert [o["id"] for o in log_lines(ad)] == ["web-1"]
    # ids go on, never again (the writer's last ids, saved at its stop,
    # wait in its own cache's export queue: this cache skips to the
    # next block reserved)
    out = fsync_predict(ad, rows(again, 1)[0] + "\n")
    assert out.startswith("web-") and out.split(",")[0] != "web-1", out


def test_other_users(mlfs_factory):
    """On an allow_other mount: anyone may score with a deployment they
    can enter, but only its owner and group give feedback, read the log
    of inputs or change it; a spec may name only models its writer can
    read."""
    m = mlfs_factory(opts=["allow_other"], public=True)
    two_models(m)
    d, r = deploy(m, "web", {"candidates": ["m@1"]})
    assert r.returncode == 0
    row = rows(m, 1)[0]
    r = as_user(["sh", "-c", f"echo {row} > {d}/predict; cat {d}/predict"])
    assert r.returncode == 0 and r.stdout.startswith("web-"), r.stderr
    for argv in (["cat", str(d / "predictions")],
                 ["sh", "-c", f"echo web-1,setosa > {d}/feedback"],
                 ["sh", "-c", f"echo pause > {d}/ctl"],
                 ["sh", "-c", f"echo m@1 1 > {d}/traffic"],
                 ["sh", "-c", f"echo '{{}}' > {d}/spec"]):
        r = as_user(argv)
        assert r.returncode != 0 and "Permission denied" in r.stderr, argv
    # nobody's own deployment cannot name root's private model
    os.chmod(m.mnt / "models/m", 0o700)
    r = as_user(["mkdir", str(m.mnt / "deployments/theirs")])
    assert r.returncode == 0, r.stderr
    r = as_user(["sh", "-c", "echo '{\"candidates\": [\"m@1\"]}' > "
                 f"{m.mnt}/deployments/theirs/spec"])
    assert r.returncode != 0
    assert not (m.mnt / "deployments/theirs/v1").exists()


def test_pii_inputs_are_left_out_or_hashed(mlfs_factory, tmp_path):
    import hashlib
    import hmac
    m = mlfs_factory()
    d = m.mnt / "datasets/people"
    d.mkdir()
    lines = ["x1,x2,zip,y"] + [f"{i % 7},{i % 5},{75000 + i % 3},{'ab'[i % 2]}"
                               for i in range(60)]
    (d / "data.csv").write_text("\n".join(lines) + "\n")
    r = sh(f"cat > {d}/schema",
           input='{"columns": [{"name": "zip", "role": "pii"}]}')
    assert r.returncode == 0, r.stderr
    assert train(m, "p", {"dataset": "people", "algorithm": "logistic",
                          "model": "pm",
                          "features": ["x1", "x2", "zip"]}) == "succeeded\n"
    dep, r = deploy(m, "pp", {"candidates": ["pm@1"]})
    assert r.returncode == 0, r.stderr
    fsync_predict(dep, "1,2,75001\n")
    assert log_lines(dep)[-1]["inputs"] == {"x1": 1, "x2": 2}
    m.stop()
    # a key that others may read refuses the mount
    key = tmp_path / "anon.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    os.chmod(key, 0o644)
    bad = subprocess.run([str(m.argv[0]), "-f", "-o",
                          f"cache={m.cache},anon_key={key}",
                          str(m.store), str(m.mnt)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0
    assert "anon_key" in bad.stderr and "mode 0600" in bad.stderr
    os.chmod(key, 0o600)
    m.opts.append(f"anon_key={key}")
    m.start()
    fsync_predict(dep, "1,2,75001\n3,4,75001\n")
    a, b = log_lines(dep)[-2:]
    k = hmac.new(key.read_bytes(), b"mlfs anon v1 uid 0",
                 hashlib.sha256).digest()
    want = hmac.new(k, b"75001", hashlib.sha256).hexdigest()
    assert a["inputs"] == {"x1": 1, "x2": 2, "zip": want}
    assert b["inputs"]["zip"] == want


def test_retention_drops_the_oldest_segments(mlfs_factory):
    import time
    m = mlfs_factory(opts=["predictions_keep=2s"])
    two_models(m)
    d, r = deploy(m, "web", {"candidates": ["m@1"]})
    first = fsync_predict(d, rows(m, 1)[0] + "\n").split(",")[0]
    time.sleep(3)
    second = fsync_predict(d, rows(m, 1)[0] + "\n").split(",")[0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ids = [o["id"] for o in log_lines(d)]
        if ids == [second]:
            break
        time.sleep(0.2)
    assert ids == [second], (first, ids)
    segs = list((m.store / "deployments/web/predictions").rglob("*.jsonl"))
    assert len(segs) == 1
    m.stop()
    for bad in ("2x", "1G:3d", "0", "1d:0"):
        r = subprocess.run([str(m.argv[0]), "-f", "-o",
                            f"cache={m.cache},predictions_keep={bad}",
                            str(m.store), str(m.mnt)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "predictions_keep" in r.stderr, bad


def test_a_model_of_feature_sets_is_served_by_key(mlfs):
    from test_feature_sync import NOTTL, orders, synced
    synced(mlfs, spec=NOTTL)
    orders(mlfs)
    spec = {"dataset": "orders", "label": "label", "algorithm": "logistic",
            "feature_sets": ["cust"], "model": "who"}
    assert train(mlfs, "pk", spec) == "succeeded\n"
    assert train(mlfs, "pk2", dict(spec, params={"l2": 0.5})) \
        == "succeeded\n"
    d, r = deploy(mlfs, "keys", {"strategy": "canary", "seed": 1,
                                 "candidates": [
                                     {"model": "who@1", "weight": 1},
                                     {"model": "who@2", "weight": 1}]})
    assert r.returncode == 0, r.stderr
    out = fsync_predict(d, "c1\nc2\n").splitlines()
    assert [x.split(",")[:2] for x in out] == [["keys-1", "fr"],
                                               ["keys-2", "de"]], out
    log = log_lines(d)
    assert set(log[0]["inputs"]) == {"spend_7d", "txns_1h", "country",
                                     "amount_last"}
    assert log[0]["inputs"]["country"] == "fr"


BAD_FEEDBACK = [
    ("web-1\n", 1, "expected id,truth"),
    ("web-1,setosa,x\n", 1, "expected id,truth"),
    (",setosa\n", 1, "an empty id"),
    ("{\"id\": \"web-1\"}\n", 1, "\"truth\": missing"),
    ("{\"truth\": \"setosa\"}\n", 1, "\"id\": missing"),
    ("{\"id\": [1], \"truth\": \"setosa\"}\n", 1, "\"id\": missing"),
    ("{bad\n", 1, "bad JSON"),
    ("id,truth\nweb-1,setosa\nweb-2\n", 3, "expected id,truth"),
    ("web-1,\"set\nosa\n", 1, "expected id,truth"),
]


@pytest.mark.parametrize("text,line,msg", BAD_FEEDBACK)
def test_bad_feedback_fails_its_write_and_takes_nothing(mlfs, text, line,
                                                         msg):
    two_models(mlfs)
    d, _ = deploy(mlfs, "web", {"candidates": ["m@1"]})
    fsync_predict(d, rows(mlfs, 2)[0] + "\n" + rows(mlfs, 2)[1] + "\n")
    r = sh(f"cat > {d}/feedback", input=text)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    err = mlfs.errors().splitlines()[-1]
    assert f"deployments/web/feedback:{line}:" in err and msg in err, err
    assert log_lines(d, "feedback") == []
    # JSON numbers are ids and truths too
    r = sh(f"cat > {d}/feedback", input='{"id": "web-1", "truth": "setosa"}\n')
    assert r.returncode == 0
    assert log_lines(d, "feedback")[0]["truth"] == "setosa"


def test_kill9_during_traffic_loses_nothing_acknowledged(mlfs):
    import threading
    two_models(mlfs)
    d, _ = deploy(mlfs, "web", {"candidates": ["m@1"]})
    row = rows(mlfs, 1)[0] + "\n"
    answered, labelled = [], []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                out = fsync_predict(d, row)
            except OSError:
                return
            if out:
                answered.append(out.split(",")[0])

    def labels():
        while not stop.is_set():
            if not answered:
                stop.wait(0.001)
                continue
            rid = answered[-1]
            try:
                fd = os.open(d / "feedback", os.O_WRONLY)
                os.write(fd, f"{rid},setosa\n".encode())
                labelled.append(rid)
                os.close(fd)
            except OSError:
                return

    ts = [threading.Thread(target=traffic), threading.Thread(target=labels)]
    for t in ts:
        t.start()
    import time
    time.sleep(1.5)
    mlfs.kill9()
    stop.set()
    for t in ts:
        t.join(30)
    mlfs.start()
    log = log_lines(d)
    got = {o["id"] for o in log if o["kind"] == "prediction"}
    fb = [o["id"] for o in log if o["kind"] == "feedback"]
    assert answered and labelled
    assert set(answered) <= got
    assert all(fb.count(i) >= labelled.count(i) for i in set(labelled))


def test_errors_past_the_rate_roll_back(mlfs):
    mlfs.expect(r"rolled back: m@2 error rate")
    two_models(mlfs)
    d, r = deploy(mlfs, "er", {"strategy": "canary", "seed": 3,
                               "candidates": [{"model": "m@1", "weight": 0},
                                              {"model": "m@2", "weight": 1}],
                               "rollback": {"error_rate": 0.2,
                                            "min_requests": 10}})
    assert r.returncode == 0, r.stderr
    good = rows(mlfs, 1)[0]
    # 9 rows, 3 of them bad: under min_requests, still serving
    text = "\n".join([good, good, "x,1,1,1"] * 3) + "\n"
    out = fsync_predict(d, text).splitlines()
    assert sum(l.startswith("error:") for l in out) == 3
    assert (d / "status").read_text() == "serving\n"
    fsync_predict(d, good + "\n")
    st = (d / "status").read_text()
    assert st == "rolled back: m@2 error rate 0.300 > 0.2 after 10 " \
        "requests\n", st
    assert log_lines(d, "error")[0]["candidate"] == "m@2"
    out = fsync_predict(d, good + "\n")
    assert log_lines(d, "prediction")[-1]["candidate"] == "m@1"
