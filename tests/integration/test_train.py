"""Training, jobs, the registry and predict, through the mount."""
import errno
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BUILD, ROOT, TEST_TMP, as_user, wait_job

IRIS = (ROOT / "examples" / "data" / "iris.csv").read_text()


def sh(cmd, **kw):
    return subprocess.run(["bash", "-c", cmd], capture_output=True,
                          text=True, timeout=120, **kw)


def iris(mlfs, name="iris"):
    d = mlfs.mnt / "datasets" / name
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    return d


def train(mlfs, job, spec, timeout=120):
    (mlfs.mnt / "train" / f"{job}.json").write_text(json.dumps(spec))
    return wait_job(mlfs.mnt, job, timeout)


def test_train_logistic_end_to_end(mlfs):
    iris(mlfs)
    spec = {"dataset": "iris@1", "algorithm": "logistic", "model": "iris",
            "params": {"l2": 0.001},
            "split": {"train": 0.6, "validation": 0.2, "test": 0.2,
                      "seed": 7}}
    assert train(mlfs, "j1", spec) == "succeeded\n"
    job = mlfs.mnt / "jobs" / "j1"
    assert sorted(os.listdir(job)) == sorted(
        ["spec", "status", "progress", "log", "metrics", "split", "wait",
         "ctl", "trials"])
    assert (job / "status").read_text() == "succeeded\n"
    assert (job / "progress").read_text().startswith("100%")
    assert json.loads((job / "spec").read_text())["algorithm"] == "logistic"
    assert "fit in" in (job / "log").read_text()
    losses = [json.loads(l) for l in (job / "metrics").read_text().splitlines()]
    assert losses and losses[0]["name"] == "loss"
    split = (job / "split").read_text().splitlines()
    assert split[0] == "row,set" and len(split) == 151
    sets = [l.split(",")[1] for l in split[1:]]
    assert sets.count("train") == 90 and sets.count("test") == 30
    # stratified: 10 of each species in the test split
    rows = IRIS.splitlines()[1:]
    test_species = [rows[int(l.split(",")[0])].split(",")[-1]
                    for l in split[1:] if l.endswith(",test")]
    assert {s: test_species.count(s) for s in set(test_species)} == \
        {"setosa": 10, "versicolor": 10, "virginica": 10}
    v1 = mlfs.mnt / "models" / "iris" / "v1"
    assert sorted(os.listdir(v1)) == [
        "bundle.tar", "confusion.svg", "evaluation.json", "learning.svg",
        "meta.json", "metrics.json", "model", "predict", "reference.csv",
        "roc.svg", "sample.csv"]
    assert os.readlink(mlfs.mnt / "models" / "iris" / "latest") == "v1"
    meta = json.loads((v1 / "meta.json").read_text())
    for k in ("name", "version", "created", "algorithm", "params", "dataset",
              "features", "label", "classes", "output", "job", "metrics",
              "plugin_version", "plugin_hash"):
        assert k in meta, k
    assert meta["name"] == "iris" and meta["version"] == 1
    assert meta["job"] == "j1" and meta["label"] == "species"
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["dataset"]["name"] == "iris" and meta["dataset"]["version"] == 1
    assert len(meta["dataset"]["hash"]) == 32
    f0 = meta["features"][0]
    for k in ("name", "type", "min", "max", "encoding"):
        assert k in f0
    m = json.loads((v1 / "metrics.json").read_text())
    for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro",
              "roc_auc", "log_loss", "confusion_matrix", "fit_seconds"):
        assert k in m, k
    assert m["accuracy"] >= 0.85
    assert sum(map(sum, m["confusion_matrix"])) == 30
    model = (v1 / "model").read_bytes()
    assert model[:8] == b"MLFSMDL\0"
    sample = (v1 / "sample.csv").read_text().splitlines()
    assert sample[0].startswith("sepal_length,") and "prediction" in sample[0]
    # ground truth: the store holds the manifest and the blobs
    man = json.loads((mlfs.store / "models/iris/v1.json").read_text())
    assert man["job"] == "j1" and man["dataset"]["version"] == 1
    rec = json.loads((mlfs.store / "jobs/j1.json").read_text())
    assert rec["status"] == "succeeded" and rec["model_version"] == 1


def test_predict_shell_session_and_isolation(mlfs):
    iris(mlfs)
    assert train(mlfs, "j", {"dataset": "iris", "algorithm": "logistic",
                             "model": "iris", "params": {"l2": 0.001}}) \
        == "succeeded\n"
    p = mlfs.mnt / "models" / "iris" / "predict"
    r = sh(f"echo 5.1,3.5,1.4,0.2 > {p}; cat {p}")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().split(",")
    assert line[0] == "setosa" and len(line) == 4
    assert abs(sum(map(float, line[1:])) - 1) < 1e-4
    # another session never sees it
    r = sh(f"echo 6.3,3.3,6.0,2.5 > {p}; setsid cat {p}; echo end")
    assert r.stdout == "end\n"
    # the same session still does
    r = sh(f"echo 6.3,3.3,6.0,2.5 > {p}; cat {p}; cat {p}")
    assert r.stdout.count("virginica,") == 2


def test_predict_handle_header_json_errors_and_large_writes(mlfs):
    iris(mlfs)
    train(mlfs, "j", {"dataset": "iris", "algorithm": "logistic",
                      "model": "iris", "params": {"l2": 0.001}})
    p = mlfs.mnt / "models" / "iris" / "predict"
    fd = os.open(p, os.O_RDWR | os.O_TRUNC)
    try:
        os.write(fd, b"petal_width,petal_length,sepal_width,sepal_length\n")
        os.write(fd, b"0.2,1.4,3.5,5.1\n2.5,6.")    # a row in two pieces
        os.write(fd, b"0,3.3,6.3\nnot,a,row\n")
        os.write(fd, b'{"sepal_length": 7.0, "sepal_width": 3.2, '
                     b'"petal_length": 4.7, "petal_width": 1.4}\n')
        out = os.read(fd, 65536).decode().splitlines()
        assert os.read(fd, 65536) == b""      # nothing pending: EOF
    finally:
        os.close(fd)
    assert out[0].startswith("setosa,")
    assert out[1].startswith("virginica,")
    assert out[2].startswith("error: ")
    js = json.loads(out[3])
    assert js["prediction"] == "versicolor"
    assert set(js["probabilities"]) == {"setosa", "versicolor", "virginica"}
    # one big write, split by the kernel: every row answered, in order
    rows = [l.rsplit(",", 1)[0] for l in IRIS.splitlines()[1:]] * 200
    data = ("\n".join(rows) + "\n").encode()
    fd = os.open(p, os.O_RDWR)
    try:
        os.write(fd, data)
        got = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            got += b
    finally:
        os.close(fd)
    lines = got.decode().splitlines()
    assert len(lines) == len(rows)
    want = [l.rsplit(",", 1)[1] for l in IRIS.splitlines()[1:]] * 200
    acc = sum(a.split(",")[0] == b for a, b in zip(lines, want)) / len(want)
    assert acc > 0.9


def test_production_alias_and_busy_rules(mlfs):
    d = iris(mlfs)
    spec = {"dataset": "iris", "algorithm": "logistic", "model": "iris"}
    assert train(mlfs, "a", spec) == "succeeded\n"
    assert train(mlfs, "b", dict(spec, params={"l2": 0.5})) == "succeeded\n"
    m = mlfs.mnt / "models" / "iris"
    assert os.readlink(m / "latest") == "v2"
    r = sh(f"cd {m} && ln -sfn v1 production")
    assert r.returncode == 0, r.stderr
    assert os.readlink(m / "production") == "v1"
    mlfs.expect("rmdir")
    with pytest.raises(OSError) as e:
        os.rmdir(m / "v1")
    assert e.value.errno == errno.EBUSY
    # a dataset a model was trained on is in use
    with pytest.raises(OSError) as e:
        os.rmdir(d / "v1")
    assert e.value.errno == errno.EBUSY
    with pytest.raises(OSError) as e:
        os.rmdir(d)
    assert e.value.errno == errno.EBUSY
    # predict uses production: v1's probabilities, not v2's
    v1 = sh(f"echo 6.0,2.9,4.5,1.5 > {m}/v1/predict; cat {m}/v1/predict").stdout
    top = sh(f"echo 6.0,2.9,4.5,1.5 > {m}/predict; cat {m}/predict").stdout
    v2 = sh(f"echo 6.0,2.9,4.5,1.5 > {m}/v2/predict; cat {m}/v2/predict").stdout
    assert top == v1 and v1 != v2
    os.unlink(m / "production")
    assert sh(f"echo 6.0,2.9,4.5,1.5 > {m}/predict; cat {m}/predict").stdout \
        == v2
    os.rmdir(m / "v1")
    assert sorted(os.listdir(m)) == ["import", "latest", "predict", "v2"]
    os.rmdir(mlfs.mnt / "jobs" / "a")
    assert "a" not in os.listdir(mlfs.mnt / "jobs")


BAD_SPECS = [
    ('{"dataset": "iris", "algorithm": "logistic", "colour": 1}',
     '1:46: "colour": unknown field'),
    ('{"algorithm": "logistic"}', '"dataset": is required'),
    ('{"dataset": "nope", "algorithm": "logistic"}', 'no dataset "nope"'),
    ('{"dataset": "iris@9", "algorithm": "logistic"}', "has no version 9"),
    ('{"dataset": "../x", "algorithm": "logistic"}', "not a dataset name"),
    ('{"dataset": "iris", "algorithm": "magic"}', 'no train plugin "magic"'),
    ('{"dataset": "iris",\n "algorithm": "logistic",\n "params": {"l2": -1}}',
     '3:13: "l2": must be'),
    ('{"dataset": "iris", "algorithm": "logistic", "params": {"zz": 1}}',
     '"zz": unknown parameter'),
    ('{"dataset": "iris", "algorithm": "logistic", "split": {"train": 0.9, '
     '"test": 0.5, "validation": 0}}', "sum to 1"),
    ('{"dataset": "iris", "algorithm": "logistic", "label": "colour"}',
     'no column "colour"'),
    ('{"dataset": "iris", "algorithm": "linear", "label": "species"}',
     '"linear" does not do classification'),
    ('{"dataset": "iris", "algorithm": "logistic", "search": '
     '{"method": "guess", "space": {"l2": {"uniform": [0, 1]}}}}',
     '"method": must name a tune plugin'),
    ('{"dataset": "iris", "algorithm": "logistic", "model": ".hidden"}',
     '"model": ".hidden" is not a valid name'),
    ('{"dataset": "iris", "algorithm": [1, 2]}', '"algorithm": must be'),
    ('{"dataset": "iris" "algorithm": "logistic"}', "'}' expected"),
    ('{"dataset": "iris", "algorithm": "linear", "task": "regression", '
     '"label": "species"}', "regression needs a numeric label"),
]


@pytest.mark.parametrize("text,msg", BAD_SPECS)
def test_bad_spec_fails_the_write_and_creates_nothing(mlfs, text, msg):
    iris(mlfs)
    mlfs.expect("rejected")
    with pytest.raises(OSError) as e:
        (mlfs.mnt / "train" / "bad.json").write_text(text)
    assert e.value.errno == errno.EINVAL
    last = mlfs.errors().splitlines()[-1]
    assert "train/bad.json:" in last and msg in last, last
    assert os.listdir(mlfs.mnt / "jobs") == []
    assert os.listdir(mlfs.mnt / "train") == []
    assert os.listdir(mlfs.mnt / "models") == []
    assert not (mlfs.store / "jobs").exists()


def test_incomplete_spec_fails_at_close_and_echo_reports_it(mlfs):
    iris(mlfs)
    mlfs.expect("rejected")
    r = sh(f"echo '{{\"dataset\": \"iris\", \"algorithm\": \"logistic\"' "
           f"> {mlfs.mnt}/train/half.json")
    # every write was a valid prefix; the close fails, and bash ignores
    # the close error of a redirection: echo's status is 0, nothing printed
    assert r.returncode == 0 and r.stderr == "", r
    last = mlfs.errors().splitlines()[-1]
    assert "train/half.json:" in last and "incomplete JSON" in last, last
    assert os.listdir(mlfs.mnt / "jobs") == []
    assert os.listdir(mlfs.mnt / "train") == []
    assert not (mlfs.store / "jobs").exists()
    # a bad spec fails the write itself: echo reports it
    r = sh(f"echo '{{\"dataset\": \"iris\", \"algorithm\": \"nope\"}}' "
           f"> {mlfs.mnt}/train/j.json")
    assert r.returncode != 0 and "Invalid argument" in r.stderr


def test_existing_job_name_is_eexist(mlfs):
    iris(mlfs)
    spec = {"dataset": "iris", "algorithm": "logistic"}
    assert train(mlfs, "j", spec) == "succeeded\n"
    with pytest.raises(OSError) as e:
        (mlfs.mnt / "train" / "j.json").write_text(json.dumps(spec))
    assert e.value.errno == errno.EEXIST
    assert (mlfs.mnt / "train" / "j.json").read_text().startswith("{")


def big_dataset(mlfs, rows=20000):
    lines = ["a,b,c,d,y"]
    for i in range(rows):
        lines.append(f"{i % 7},{i % 11},{(i * 3) % 13},{i % 5},{i % 3}")
    d = mlfs.mnt / "datasets" / "big"
    d.mkdir()
    (d / "data.csv").write_text("\n".join(lines) + "\n")


INTERRUPTIBLE_READ = r'''
import signal, sys
def interrupted(*_):
    raise KeyboardInterrupt
signal.signal(signal.SIGINT, interrupted)
f = open(sys.argv[1])
print("reading", flush=True)
try:
    f.read()
    print("read")
except KeyboardInterrupt:
    print("interrupted")
'''


def test_cancel_and_wait_interrupt(mlfs):
    big_dataset(mlfs)
    spec = {"dataset": "big", "algorithm": "mlp",
            "params": {"hidden": [256, 256], "epochs": 100000,
                       "early_stopping": False}}
    (mlfs.mnt / "train" / "long.json").write_text(json.dumps(spec))
    job = mlfs.mnt / "jobs" / "long"
    deadline = time.monotonic() + 60
    while (job / "status").read_text() != "running\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # A blocked reader holds no thread and Ctrl-C ends it: the daemon
    # answers the kernel's interrupt with EINTR.  The reader handles
    # SIGINT (a fatal signal would end it in the kernel whatever the
    # daemon did, and one inherited as ignored would never arrive).
    w = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE_READ,
                          str(job / "wait")], stdout=subprocess.PIPE,
                         text=True)
    assert w.stdout.readline() == "reading\n"
    time.sleep(0.5)
    assert w.poll() is None
    w.send_signal(signal.SIGINT)
    assert w.communicate(timeout=10)[0] == "interrupted\n"
    # other operations go on while a reader is parked
    w2 = subprocess.Popen(["cat", str(job / "wait")], stdout=subprocess.PIPE,
                          text=True)
    assert (mlfs.mnt / "README").read_text()
    with pytest.raises(OSError) as e:
        os.rmdir(job)
    assert e.value.errno == errno.EBUSY
    (job / "ctl").write_text("cancel\n")
    assert w2.communicate(timeout=30)[0] == "failed: cancelled\n"
    assert (job / "status").read_text() == "failed: cancelled\n"
    mlfs.expect("rejected")
    with pytest.raises(OSError) as e:
        (job / "ctl").write_text("explode\n")
    assert e.value.errno == errno.EINVAL
    assert "unknown command" in mlfs.errors()
    assert os.listdir(mlfs.mnt / "models") == []


def test_timeout_fails_the_job(mlfs):
    big_dataset(mlfs)
    spec = {"dataset": "big", "algorithm": "mlp", "timeout": 1,
            "params": {"hidden": [256, 256], "epochs": 100000,
                       "early_stopping": False}}
    out = train(mlfs, "slow", spec, timeout=60)
    assert out.startswith("failed: timed out after 1 s")


CRASH_PLUGIN = r'''
#include <stddef.h>
#include <mlfs_plugin.h>
static int init(const struct mlfs_host *h, unsigned task,
                const struct mlfs_param *p, size_t n, void **inst,
                char *msg, size_t len)
{ (void)h; (void)task; (void)p; (void)n; (void)msg; (void)len;
  *inst = (void *)1; return 0; }
static int fit(void *inst, const struct mlfs_data *t,
               const struct mlfs_data *v, char *msg, size_t len)
{ (void)inst; (void)t; (void)v; (void)msg; (void)len;
  *(volatile int *)0 = 1; return 0; }
static size_t outputs(void *inst) { (void)inst; return 1; }
static int predict(void *i, const struct mlfs_matrix *x,
                   struct mlfs_matrix *o) { (void)i; (void)x; (void)o; return 0; }
static int save(void *i, void **b, size_t *l) { (void)i; *b = 0; *l = 0; return 0; }
static int load(void *i, const void *b, size_t l) { (void)i; (void)b; (void)l; return 0; }
static void fini(void *i) { (void)i; }
static const struct mlfs_train_ops ops = {
	sizeof(ops), MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION,
	init, fit, outputs, predict, save, load, fini };
MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	MLFS_ABI_MAJOR, MLFS_ABI_MINOR, MLFS_STAGE_TRAIN, "crash", "0", &ops };
'''


def plugin_dir(tmp_path, sources):
    """A plugins= folder: the built-in train and tune plugins, and each
    of sources ({name: C text}) compiled to <name>.so."""
    pdir = tmp_path / "plugins"
    pdir.mkdir()
    for stage in ("train", "tune"):
        for so in (BUILD / "plugins" / stage).glob("*.so"):
            shutil.copy(so, pdir)
    for name, text in sources.items():
        (tmp_path / f"{name}.c").write_text(text)
        r = subprocess.run(["gcc", "-shared", "-fPIC", "-fvisibility=hidden",
                            f"-I{ROOT / 'plugins'}", str(tmp_path / f"{name}.c"),
                            "-o", str(pdir / f"{name}.so")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    return pdir


def test_crashing_plugin_fails_its_job_not_the_mount(mlfs_factory, tmp_path):
    pdir = plugin_dir(tmp_path, {
        "crash": CRASH_PLUGIN,
        "badname": CRASH_PLUGIN.replace('"crash", "0"', '"other", "0"')})
    mlfs = mlfs_factory(opts=[f"plugins={pdir}"])
    mlfs.expect("plugin refused")
    plugins = (mlfs.mnt / ".mlfs" / "plugins").read_text()
    # built against this tree's header: its ABI version, whatever it is
    minor = re.search(r"#define MLFS_ABI_MINOR (\d+)", (
        ROOT / "plugins" / "mlfs_plugin.h").read_text()).group(1)
    assert f"crash train 1.{minor} " in plugins
    assert "refused" in plugins and "badname.so" in plugins
    assert 'does not match the file name' in plugins
    iris(mlfs)
    out = train(mlfs, "boom", {"dataset": "iris", "algorithm": "crash"})
    assert out.startswith("failed: the job program died of signal 11")
    # the log has what the job program said before fit, then the runner's
    # line on how it ended (ASan's SEGV handler is off in jobs: no report)
    log = (mlfs.mnt / "jobs/boom/log").read_text().splitlines()
    assert log[0] == "job boom: crash classification on iris@1", log
    assert any(l.startswith("split: ") for l in log), log
    assert not any(l.startswith("fit in") for l in log), log
    assert log[-1] == "mlfs: the job program died of signal 11 " \
        "(Segmentation fault)", log
    # the mount is fine
    assert train(mlfs, "ok", {"dataset": "iris", "algorithm": "logistic"}) \
        == "succeeded\n"


def test_regression_clustering_mlp_and_search(mlfs):
    rows = ["x1,x2,cat,y"]
    for i in range(300):
        x1, x2 = (i * 37 % 100) / 10, (i * 53 % 100) / 10
        c = "abc"[i % 3]
        y = 2 * x1 - x2 + {"a": 0, "b": 5, "c": -5}[c]
        rows.append(f"{x1},{x2},{c},{y}")
    d = mlfs.mnt / "datasets" / "reg"
    d.mkdir()
    (d / "data.csv").write_text("\n".join(rows) + "\n")
    assert train(mlfs, "lin", {"dataset": "reg", "algorithm": "linear"}) \
        == "succeeded\n"
    m = json.loads((mlfs.mnt / "models/lin/v1/metrics.json").read_text())
    assert m["r2"] > 0.999 and "rmse" in m and "mae" in m
    meta = json.loads((mlfs.mnt / "models/lin/v1/meta.json").read_text())
    assert any(f["encoding"] == "onehot" for f in meta["features"])
    r = sh(f"echo 1,2,b > {mlfs.mnt}/models/lin/predict; "
           f"cat {mlfs.mnt}/models/lin/predict")
    assert abs(float(r.stdout) - (2 * 1 - 2 + 5)) < 0.01
    iris(mlfs)
    assert train(mlfs, "km", {"dataset": "iris", "algorithm": "kmeans",
                              "features": ["petal_length", "petal_width"],
                              "params": {"k": 3}}) == "succeeded\n"
    m = json.loads((mlfs.mnt / "models/km/v1/metrics.json").read_text())
    assert m["inertia"] > 0 and 0 < m["silhouette"] <= 1
    assert train(mlfs, "nn", {"dataset": "iris", "algorithm": "mlp",
                              "params": {"hidden": [16], "epochs": 500,
                                         "early_stopping": False,
                                         "learning_rate": 0.02}}) \
        == "succeeded\n"
    assert json.loads((mlfs.mnt / "models/nn/v1/metrics.json")
                      .read_text())["accuracy"] > 0.8
    spec = {"dataset": "iris", "algorithm": "logistic", "model": "tuned",
            "search": {"method": "random", "trials": 4, "metric": "accuracy",
                       "goal": "maximize",
                       "space": {"l2": {"log_uniform": [1e-4, 10]}}}}
    assert train(mlfs, "s", spec) == "succeeded\n"
    trials = sorted(os.listdir(mlfs.mnt / "jobs/s/trials"), key=int)
    assert trials == ["0", "1", "2", "3"]
    ts = [json.loads((mlfs.mnt / "jobs/s/trials" / t).read_text())
          for t in trials]
    assert all(t["status"] == "succeeded" and "accuracy" in t["metrics"]
               for t in ts)
    best = [t for t in ts if t.get("best")]
    assert len(best) == 1
    meta = json.loads((mlfs.mnt / "models/tuned/v1/meta.json").read_text())
    assert meta["params"]["l2"] == best[0]["params"]["l2"]
    spec["search"] = {"method": "halving", "trials": 6,
                      "space": {"l2": {"log_uniform": [1e-4, 10]}}}
    spec["model"] = "halved"
    assert train(mlfs, "h", spec) == "succeeded\n"
    ts = [json.loads((mlfs.mnt / "jobs/h/trials" / str(i)).read_text())
          for i in range(6)]
    assert sum(t["status"] == "stopped early" for t in ts) == 4
    assert sum(t["budget"] == 1 for t in ts) == 2
    # grid, two trials at once
    spec["search"] = {"method": "grid", "trials": 20, "parallel": 2,
                      "space": {"l2": {"log_uniform": [1e-3, 1]},
                                "max_iter": {"choice": [50, 100]}}}
    spec["model"] = "gridded"
    assert train(mlfs, "g", spec) == "succeeded\n"
    ts = [json.loads((mlfs.mnt / "jobs/g/trials" / t).read_text())
          for t in os.listdir(mlfs.mnt / "jobs/g/trials")]
    assert len(ts) == 10
    assert {t["params"]["max_iter"] for t in ts} == {50, 100}
    assert "search: grid" in (mlfs.mnt / "jobs/g/log").read_text()


def test_jobs_and_models_survive_remount_and_index_rebuild(mlfs):
    iris(mlfs)
    train(mlfs, "j", {"dataset": "iris", "algorithm": "logistic",
                      "model": "iris"})
    os.symlink("v1", mlfs.mnt / "models/iris/production")
    mlfs.stop()
    shutil.rmtree(mlfs.cache)
    mlfs.start()
    assert (mlfs.mnt / "jobs/j/status").read_text() == "succeeded\n"
    assert "fit in" in (mlfs.mnt / "jobs/j/log").read_text()
    assert len((mlfs.mnt / "jobs/j/split").read_text().splitlines()) == 151
    assert os.readlink(mlfs.mnt / "models/iris/production") == "v1"
    r = sh(f"echo 5.1,3.5,1.4,0.2 > {mlfs.mnt}/models/iris/predict; "
           f"cat {mlfs.mnt}/models/iris/predict")
    assert r.stdout.startswith("setosa,")


def test_job_interrupted_by_a_crash_is_failed_after_remount(mlfs):
    big_dataset(mlfs)
    spec = {"dataset": "big", "algorithm": "mlp",
            "params": {"hidden": [256, 256], "epochs": 100000,
                       "early_stopping": False}}
    (mlfs.mnt / "train" / "long.json").write_text(json.dumps(spec))
    deadline = time.monotonic() + 60
    while (mlfs.mnt / "jobs/long/status").read_text() != "running\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pid = None
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() == "mlfs-job" and \
                        str(mlfs.cache) in (p / "cmdline").read_text():
                    pid = int(p.name)
            except OSError:
                pass
    mlfs.kill9()
    if pid:  # the orphaned job program we started: end it by its PID
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    mlfs.start()
    st = (mlfs.mnt / "jobs/long/status").read_text()
    assert st.startswith("failed: interrupted")


def trials_of(mnt, job):
    d = Path(mnt) / "jobs" / job / "trials"
    return [json.loads((d / t).read_text())
            for t in sorted(os.listdir(d), key=int)]


def documented_best(ts, metric, maximize):
    """The manual's rule: the best metric for the goal among succeeded
    trials at the full budget; ties go to the lower log loss, then to
    the lower trial number."""
    ok = [t for t in ts if t["status"] == "succeeded" and t["budget"] == 1]
    sign = -1 if maximize else 1
    return min(ok, key=lambda t: (sign * t["metrics"][metric],
                                  t["metrics"].get("log_loss", 0),
                                  t["trial"]))


def without_times(ts):
    return [dict(t, metrics={k: v for k, v in t["metrics"].items()
                             if not k.endswith("_seconds")})
            for t in ts]


def test_search_picks_the_best_trial_reproducibly_within_bounds(mlfs):
    iris(mlfs)
    space = {"l2": {"log_uniform": [1e-3, 10]},
             "tol": {"uniform": [1e-5, 1e-3]},
             "max_iter": {"int": [5, 40]},
             "solver": {"choice": ["lbfgs", "sgd"]}}
    spec = {"dataset": "iris", "algorithm": "logistic",
            "split": {"train": 0.6, "validation": 0.2, "test": 0.2,
                      "seed": 11},
            "search": {"method": "random", "trials": 8,
                       "metric": "accuracy", "goal": "maximize",
                       "space": space}}
    for job in ("s1", "s2"):
        assert train(mlfs, job, spec) == "succeeded\n"
    ts = trials_of(mlfs.mnt, "s1")
    assert [t["trial"] for t in ts] == list(range(8))
    assert all(t["status"] == "succeeded" for t in ts), ts
    # every draw stays within its range, of its kind
    for t in ts:
        p = t["params"]
        assert 1e-3 <= p["l2"] <= 10 and isinstance(p["l2"], float)
        assert 1e-5 <= p["tol"] <= 1e-3 and isinstance(p["tol"], float)
        assert 5 <= p["max_iter"] <= 40 and isinstance(p["max_iter"], int)
        assert p["solver"] in ("lbfgs", "sgd")
    assert len({t["params"]["l2"] for t in ts}) == 8
    # the chosen trial is the documented best, and it is the model
    best = [t for t in ts if t.get("best")]
    want = documented_best(ts, "accuracy", True)
    assert [t["trial"] for t in best] == [want["trial"]]
    assert all(t["metrics"]["accuracy"] <= want["metrics"]["accuracy"]
               for t in ts)
    meta = json.loads((mlfs.mnt / "models/s1/v1/meta.json").read_text())
    for k in space:
        assert meta["params"][k] == want["params"][k], k
    assert "best trial %d: accuracy = " % want["trial"] in \
        (mlfs.mnt / "jobs/s1/log").read_text()
    # the same spec and seed: the same trials, params and metrics
    assert without_times(trials_of(mlfs.mnt, "s2")) == without_times(ts)
    # another seed draws other params
    spec["split"]["seed"] = 12
    assert train(mlfs, "s3", spec) == "succeeded\n"
    assert [t["params"] for t in trials_of(mlfs.mnt, "s3")] != \
        [t["params"] for t in ts]


def test_search_ties_go_to_lower_log_loss_then_lower_trial(mlfs):
    iris(mlfs)
    # the same configuration three times: equal in every metric
    spec = {"dataset": "iris", "algorithm": "logistic",
            "search": {"method": "grid", "metric": "accuracy",
                       "space": {"l2": {"choice": [0.05, 0.05, 0.05]}}}}
    assert train(mlfs, "same", spec) == "succeeded\n"
    ts = trials_of(mlfs.mnt, "same")
    assert len(ts) == 3
    assert without_times(ts)[0]["metrics"] == \
        without_times(ts)[2]["metrics"]
    assert [t["trial"] for t in ts if t.get("best")] == [0]
    # equal accuracy, different log loss: the lower log loss wins even
    # when a worse-calibrated trial comes first
    spec["search"]["space"] = {"l2": {"choice": [3.0, 0.3, 0.03, 0.003]}}
    assert train(mlfs, "cal", spec) == "succeeded\n"
    ts = trials_of(mlfs.mnt, "cal")
    acc = [t["metrics"]["accuracy"] for t in ts]
    want = documented_best(ts, "accuracy", True)
    tied = [t for t in ts if t["metrics"]["accuracy"] == max(acc)]
    assert len(tied) >= 2, acc   # the case under test: a tie on accuracy
    assert len({t["metrics"]["log_loss"] for t in tied}) == len(tied)
    assert want["trial"] != tied[0]["trial"]   # not merely the first
    assert [t["trial"] for t in ts if t.get("best")] == [want["trial"]]
    # minimize: the lowest value wins
    spec["search"] = {"method": "grid", "metric": "log_loss",
                      "goal": "minimize",
                      "space": {"l2": {"choice": [3.0, 0.3, 0.03]}}}
    assert train(mlfs, "ll", spec) == "succeeded\n"
    ts = trials_of(mlfs.mnt, "ll")
    low = min(ts, key=lambda t: t["metrics"]["log_loss"])
    assert [t["trial"] for t in ts if t.get("best")] == [low["trial"]]


def test_search_max_failed(mlfs):
    iris(mlfs)
    # l2 = -1 fails the plugin's check: one failed trial of three
    spec = {"dataset": "iris", "algorithm": "logistic",
            "search": {"method": "grid", "max_failed": 1,
                       "space": {"l2": {"choice": [-1, 0.01, 0.1]}}}}
    assert train(mlfs, "one", spec) == "succeeded\n"
    ts = trials_of(mlfs.mnt, "one")
    assert [t["status"] for t in ts] == ["failed", "succeeded", "succeeded"]
    assert "l2" in ts[0]["reason"] and "metrics" not in ts[0]
    assert not ts[0].get("best")
    spec["search"]["max_failed"] = 0
    assert train(mlfs, "none", spec) == \
        "failed: 1 trials failed (max_failed 0)\n"
    spec["search"] = {"method": "grid",
                      "space": {"l2": {"choice": [-1, -2, -3, -4, 0.1]}}}
    assert train(mlfs, "dflt", spec) == \
        "failed: 4 trials failed (max_failed 3)\n"
    assert sorted(os.listdir(mlfs.mnt / "models")) == ["one"]


def kmeans_centres(model):
    """The centres saved by the kmeans plugin: "MFKM", version, task,
    k (u64), features (u64), inertia (f64), then k x features floats."""
    import struct
    at = model.index(b"MFKM")
    k, d, inertia = struct.unpack_from("<QQd", model, at + 12)
    c = struct.unpack_from(f"<{k * d}f", model, at + 36)
    return [list(c[i * d:(i + 1) * d]) for i in range(k)], inertia


def test_kmeans_matches_a_hand_computed_clustering(mlfs):
    # three clusters of four points, each at distance 1 from its centre
    centres = [(0, 0), (10, 0), (0, 10)]
    pts = [(cx + dx, cy + dy) for cx, cy in centres
           for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    d = mlfs.mnt / "datasets" / "pts"
    d.mkdir()
    (d / "data.csv").write_text(
        "a,b\n" + "".join(f"{x},{y}\n" for x, y in pts))
    assert train(mlfs, "km", {
        "dataset": "pts", "algorithm": "kmeans", "features": ["a", "b"],
        "params": {"k": 3},
        "split": {"train": 1, "validation": 0, "test": 0}}) == "succeeded\n"
    v1 = mlfs.mnt / "models/km/v1"
    meta = json.loads((v1 / "meta.json").read_text())
    # by hand: features are standardised with the training mean and the
    # population std; the centres are the groups' means
    mean = [sum(p[f] for p in pts) / 12 for f in (0, 1)]
    std = [(sum((p[f] - mean[f]) ** 2 for p in pts) / 12) ** 0.5
           for f in (0, 1)]
    for f, feat in enumerate(meta["features"]):
        assert feat["mean"] == pytest.approx(mean[f])
        assert feat["std"] == pytest.approx(std[f])
    got, inertia = kmeans_centres((v1 / "model").read_bytes())
    got_raw = [tuple(c[f] * std[f] + mean[f] for f in (0, 1)) for c in got]
    assert sorted(got_raw) == [pytest.approx(c, abs=1e-4)
                               for c in sorted(centres)]
    # each point is 1 from its centre along a or b: standardised, six
    # squared distances of 1/std_a^2 and six of 1/std_b^2
    want_inertia = 6 / std[0] ** 2 + 6 / std[1] ** 2
    assert inertia == pytest.approx(want_inertia, rel=1e-5)
    m = json.loads((v1 / "metrics.json").read_text())
    assert m["evaluated_on"] == "train" and m["n"] == 12
    assert m["inertia"] == pytest.approx(want_inertia, rel=1e-5)
    # predict answers the index of the nearest centre: the hand grouping,
    # new points included
    p = v1 / "predict"
    fd = os.open(p, os.O_RDWR)
    try:
        os.write(fd, "".join(f"{x},{y}\n" for x, y in pts).encode() +
                 b"9.6,0.3\n0.4,8.9\n0.2,-0.4\n")
        out = [int(l) for l in os.read(fd, 65536).decode().splitlines()]
    finally:
        os.close(fd)
    assert len(out) == 15
    for i, (x, y) in enumerate(pts + [(9.6, 0.3), (0.4, 8.9), (0.2, -0.4)]):
        near = min(centres, key=lambda c: (c[0] - x) ** 2 + (c[1] - y) ** 2)
        assert got_raw[out[i]] == pytest.approx(near, abs=1e-4), (x, y)
    assert len(set(out[:12])) == 3


# A train plugin whose fit idles (no CPU) until the job is cancelled: a
# job that stays running for as long as a test needs, and ends at once.
SLEEPY_PLUGIN = r'''
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mlfs_plugin.h>
struct sleepy { struct mlfs_host h; };
static int init(const struct mlfs_host *h, unsigned task,
                const struct mlfs_param *p, size_t n, void **inst,
                char *msg, size_t len)
{ struct sleepy *s = calloc(1, sizeof(*s));
  (void)task; (void)p; (void)n; (void)msg; (void)len;
  if (!s) return -ENOMEM;
  memcpy(&s->h, h, h->size < sizeof(s->h) ? h->size : sizeof(s->h));
  *inst = s; return 0; }
static int fit(void *inst, const struct mlfs_data *t,
               const struct mlfs_data *v, char *msg, size_t len)
{ struct sleepy *s = inst;
  struct timespec ts = { 0, 20000000 };
  (void)t; (void)v; (void)msg; (void)len;
  s->h.progress(s->h.ctx, 0.5, "sleeping");
  while (!s->h.cancelled(s->h.ctx)) nanosleep(&ts, NULL);
  return -ECANCELED; }
static size_t outputs(void *inst) { (void)inst; return 1; }
static int predict(void *i, const struct mlfs_matrix *x,
                   struct mlfs_matrix *o) { (void)i; (void)x; (void)o; return 0; }
static int save(void *i, void **b, size_t *l) { (void)i; *b = 0; *l = 0; return 0; }
static int load(void *i, const void *b, size_t l) { (void)i; (void)b; (void)l; return 0; }
static void fini(void *i) { free(i); }
static const struct mlfs_train_ops ops = {
	sizeof(ops), MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION,
	init, fit, outputs, predict, save, load, fini };
MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	MLFS_ABI_MAJOR, MLFS_ABI_MINOR, MLFS_STAGE_TRAIN, "sleepy", "0", &ops };
'''

SLEEPY = {"dataset": "iris", "algorithm": "sleepy"}


def sleepy_mount(mlfs_factory, tmp_path, opts=(), **kw):
    pdir = plugin_dir(tmp_path, {"sleepy": SLEEPY_PLUGIN})
    m = mlfs_factory(opts=[f"plugins={pdir}", *opts], **kw)
    iris(m)
    return m


def wait_status(mnt, job, want, timeout=60):
    st = Path(mnt) / "jobs" / job / "status"
    deadline = time.monotonic() + timeout
    while (got := st.read_text()) != want:
        assert time.monotonic() < deadline, f"{job}: {got!r}, not {want!r}"
        time.sleep(0.05)


def job_pid(mlfs, job, timeout=30):
    """The job program's PID, from the daemon's own line "jobs/<job>:
    running (pid N)"; checked to be an mlfs-job child of this daemon."""
    pat = re.compile(rf"jobs/{re.escape(job)}: running \(pid (\d+)\)")
    deadline = time.monotonic() + timeout
    while not (m := pat.search(mlfs.stderr())):
        assert time.monotonic() < deadline, f"no pid for jobs/{job}"
        time.sleep(0.05)
    pid = int(m.group(1))
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"\nPPid:\t{mlfs.proc.pid}\n" in status
    assert Path(f"/proc/{pid}/comm").read_text() == "mlfs-job\n"
    return pid


def proc_ids(pid):
    """{"Uid": [...], "Gid": [...], "Groups": [...]} of a process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups"):
            out[k] = [int(x) for x in v.split()]
    return out


def test_jobs_beyond_jobs_n_wait_queued(mlfs_factory, tmp_path):
    mlfs = sleepy_mount(mlfs_factory, tmp_path, opts=["jobs=1"])
    (mlfs.mnt / "train/a.json").write_text(json.dumps(SLEEPY))
    wait_status(mlfs.mnt, "a", "running\n")
    (mlfs.mnt / "train/b.json").write_text(
        json.dumps({"dataset": "iris", "algorithm": "logistic"}))
    b = mlfs.mnt / "jobs/b"
    assert (b / "status").read_text() == "queued\n"
    assert json.loads((mlfs.store / "jobs/b.json").read_text())["status"] \
        == "queued"
    # a never ends by itself: b stays queued, however long we look
    time.sleep(0.5)
    assert (b / "status").read_text() == "queued\n"
    assert (b / "progress").read_text() == "0% waiting to start\n"
    assert "running (pid" not in "".join(
        l for l in mlfs.stderr().splitlines() if "jobs/b:" in l)
    (mlfs.mnt / "jobs/a/ctl").write_text("cancel\n")
    assert wait_job(mlfs.mnt, "a") == "failed: cancelled\n"
    assert wait_job(mlfs.mnt, "b") == "succeeded\n"
    assert re.search(r"jobs/b: running \(pid \d+\)", mlfs.stderr())


def test_parked_waits_beyond_the_fuse_threads(mlfs_factory, tmp_path):
    mlfs = sleepy_mount(mlfs_factory, tmp_path)
    (mlfs.mnt / "train/a.json").write_text(json.dumps(SLEEPY))
    wait_status(mlfs.mnt, "a", "running\n")
    # fs/main.c: fuse_loop_cfg_set_max_threads(lcfg, 64); were a parked
    # read to hold a worker, 70 of them would leave none to answer
    src = (ROOT / "fs/main.c").read_text()
    threads = int(re.search(r"set_max_threads\(lcfg, (\d+)\)", src)[1])
    n = threads + 6
    readers = [subprocess.Popen(["cat", str(mlfs.mnt / "jobs/a/wait")],
                                stdout=subprocess.PIPE, text=True)
               for _ in range(n)]
    try:
        # all of them inside read(2) on the wait file
        deadline = time.monotonic() + 60
        for r in readers:
            while Path(f"/proc/{r.pid}/syscall").read_text().split()[0] \
                    != "0":
                assert r.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        # the mount still answers, with every reader parked
        ls = sh(f"ls {mlfs.mnt} {mlfs.mnt}/jobs")
        assert ls.returncode == 0 and "datasets" in ls.stdout.split() \
            and "a" in ls.stdout.split(), ls
        assert sh(f"cat {mlfs.mnt}/README").stdout == \
            (mlfs.mnt / "README").read_text() != ""
        assert os.stat(mlfs.mnt / "jobs/a/status").st_size > 0
        assert (mlfs.mnt / "jobs/a/status").read_text() == "running\n"
        assert all(r.poll() is None for r in readers)
        (mlfs.mnt / "jobs/a/ctl").write_text("cancel\n")
        outs = [r.communicate(timeout=60) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
                r.wait()
    assert [o[0] for o in outs] == ["failed: cancelled\n"] * n
    assert all(r.returncode == 0 for r in readers)


def test_clean_unmount_cancels_running_and_queued_jobs(mlfs_factory,
                                                      tmp_path):
    mlfs = sleepy_mount(mlfs_factory, tmp_path, opts=["jobs=1"])
    (mlfs.mnt / "train/run.json").write_text(json.dumps(SLEEPY))
    wait_status(mlfs.mnt, "run", "running\n")
    pid = job_pid(mlfs, "run")
    (mlfs.mnt / "train/wait.json").write_text(json.dumps(SLEEPY))
    assert (mlfs.mnt / "jobs/wait/status").read_text() == "queued\n"
    assert mlfs.stop() == 0
    # the daemon ended and reaped its job program
    try:
        alive = str(mlfs.cache) in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        alive = False
    assert not alive, f"job program {pid} outlived the unmount"
    for job in ("run", "wait"):
        rec = json.loads((mlfs.store / f"jobs/{job}.json").read_text())
        assert (rec["status"], rec["reason"]) == \
            ("failed", "cancelled by unmount"), job
    mlfs.start()
    for job in ("run", "wait"):
        assert (mlfs.mnt / f"jobs/{job}/status").read_text() == \
            "failed: cancelled by unmount\n", job
        assert wait_job(mlfs.mnt, job, 10) == \
            "failed: cancelled by unmount\n"


def same_open_file(pid1, fd1, pid2, fd2):
    """kcmp(KCMP_FILE): do two descriptors share one open file?"""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.syscall(312, pid1, pid2, 0, fd1, fd2)   # SYS_kcmp, x86-64
    assert r >= 0, os.strerror(ctypes.get_errno())
    return r == 0


def test_job_runs_as_the_writer_and_holds_no_daemon_descriptor(
        mlfs_factory):
    # the job loads its plugin as the writer: a folder others can read
    pub = Path(tempfile.mkdtemp(prefix="mlfs-plugins-", dir=TEST_TMP or
                                "/tmp"))
    os.chmod(pub, 0o755)
    try:
        check_writer_and_descriptors(mlfs_factory, pub)
    finally:
        shutil.rmtree(pub)


def check_writer_and_descriptors(mlfs_factory, pub):
    mlfs = sleepy_mount(mlfs_factory, pub, opts=["allow_other"],
                        public=True)
    spec = json.dumps(SLEEPY)
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "bash", "-c", f"echo '{spec}' > {mlfs.mnt}/train/u.json"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_status(mlfs.mnt, "u", "running\n")
    pid = job_pid(mlfs, "u")
    # the job program drops its rights itself, before it reads the data:
    # look once it has split the data
    deadline = time.monotonic() + 60
    while "\nsplit: " not in (mlfs.mnt / "jobs/u/log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        ids = proc_ids(pid)
        assert ids == {"Uid": [65534] * 4, "Gid": [65534] * 4,
                       "Groups": []}, ids
        rec = json.loads((mlfs.store / "jobs/u.json").read_text())
        assert (rec["uid"], rec["gid"]) == (65534, 65534)
        # descriptors: none is /dev/fuse, none is one of the daemon's
        fds = {int(f): os.readlink(f"/proc/{pid}/fd/{f}")
               for f in os.listdir(f"/proc/{pid}/fd")}
        assert "/dev/fuse" not in fds.values(), fds
        assert fds[0] == "/dev/null"
        assert fds[1] == fds[2] == str(mlfs.cache / "jobs/u/log")
        dfds = [int(f) for f in os.listdir(f"/proc/{mlfs.proc.pid}/fd")]
        assert "/dev/fuse" in [os.readlink(f"/proc/{mlfs.proc.pid}/fd/{f}")
                               for f in dfds]
        for f in fds:
            for d in dfds:
                assert not same_open_file(pid, f, mlfs.proc.pid, d), \
                    (f, fds[f], d)
    finally:
        (mlfs.mnt / "jobs/u/ctl").write_text("cancel\n")
    assert wait_job(mlfs.mnt, "u") == "failed: cancelled\n"


# A train plugin whose fit takes 1 GiB, 32 MiB at a time, touching it.
HOG_PLUGIN = SLEEPY_PLUGIN.replace('"sleepy"', '"hog"').replace(
    '  s->h.progress(s->h.ctx, 0.5, "sleeping");',
    '  for (int i = 0; i < 32; i++) { char *p = malloc(32 << 20);\n'
    '    if (p) memset(p, i + 1, 32 << 20); nanosleep(&ts, NULL); }')


def test_memory_bound_fails_the_job_and_says_so(mlfs_factory, tmp_path):
    pdir = plugin_dir(tmp_path, {"hog": HOG_PLUGIN})
    mlfs = mlfs_factory(opts=[f"plugins={pdir}"])
    iris(mlfs)
    (mlfs.mnt / "train/big.json").write_text(json.dumps(
        {"dataset": "iris", "algorithm": "hog", "memory": "300M"}))
    out = wait_job(mlfs.mnt, "big", 60)
    assert out.startswith("failed: memory limit exceeded: "), out
    assert "limit 300 MiB" in out
    assert "was killed: memory limit exceeded" in \
        (mlfs.mnt / "jobs/big/log").read_text()
    assert os.listdir(mlfs.mnt / "models") == []
    # a bound the job stays under lets it finish (OpenBLAS's reserved
    # buffers, the sanitizers' shadow count for nothing)
    (mlfs.mnt / "train/ok.json").write_text(json.dumps(
        {"dataset": "iris", "algorithm": "logistic", "memory": "300M"}))
    assert wait_job(mlfs.mnt, "ok", 60) == "succeeded\n"


def gone(pid, timeout=10):
    """Has pid ended (gone, or a zombie no one reaped yet) within timeout?"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = [ln for ln in Path(f"/proc/{pid}/status").read_text()
                     .splitlines() if ln.startswith("State:")][0]
        except (OSError, IndexError):
            return True
        if "zombie" in state:
            return True
        time.sleep(0.05)
    return False


def test_a_job_carries_no_secrets_and_dies_with_its_daemon(mlfs_factory,
                                                           tmp_path):
    mlfs = sleepy_mount(mlfs_factory, tmp_path, env={
        "AWS_SECRET_ACCESS_KEY": "SECRET-MUST-NOT-LEAK",
        "MLFS_DAEMON_ONLY": "x"})
    (mlfs.mnt / "train/s.json").write_text(json.dumps(SLEEPY))
    wait_status(mlfs.mnt, "s", "running\n")
    pid = job_pid(mlfs, "s")
    env = dict(e.split("=", 1) for e in Path(f"/proc/{pid}/environ")
               .read_bytes().decode().split("\0") if e)
    assert set(env) <= {"PATH", "LANG", "HOME", "OPENBLAS_NUM_THREADS",
                        "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}, env
    assert {"PATH", "LANG", "HOME"} <= set(env)
    assert env["HOME"] == "/root"
    assert "SECRET-MUST-NOT-LEAK" not in Path(f"/proc/{pid}/environ") \
        .read_bytes().decode()
    # the daemon crashes: its job dies with it (PR_SET_PDEATHSIG) ...
    mlfs.kill9()
    assert gone(pid), "the job outlived its daemon"
    # ... and the next mount says so
    mlfs.start()
    assert (mlfs.mnt / "jobs/s/status").read_text().startswith("failed")


# A train plugin that, running as the writer in its job's folder, puts
# links to a file only root may read where the daemon reads and writes
# (log, progress, out/), then idles until cancelled.
LINKER_PLUGIN = SLEEPY_PLUGIN.replace('"sleepy"', '"linker"').replace(
    "#include <time.h>", "#include <time.h>\n#include <unistd.h>\n"
    "#include <sys/stat.h>").replace(
    '  s->h.progress(s->h.ctx, 0.5, "sleeping");',
    '  s->h.progress(s->h.ctx, 0.5, "sleeping");\n'
    '  unlink("log"); symlink(LINK_DIR, "dir");\n'
    '  symlink(LINK_TARGET, "log"); unlink("progress");\n'
    '  symlink(LINK_TARGET, "progress");\n'
    '  mkdir("real", 0755); symlink("real", "out");')


def read_or_errno(path):
    try:
        return path.read_text()
    except OSError as e:
        assert e.errno == errno.ELOOP, e
        return f"errno {e.errno}"


def test_the_daemon_follows_no_link_in_a_job_folder(mlfs_factory):
    pub = Path(tempfile.mkdtemp(prefix="mlfs-plugins-",
                                dir=TEST_TMP or "/tmp"))
    os.chmod(pub, 0o755)
    secret = pub / "secret"
    secret.write_text("ROOT-ONLY-CONTENT\n")
    os.chmod(secret, 0o600)
    try:
        pdir = plugin_dir(pub, {"linker": LINKER_PLUGIN.replace(
            "LINK_TARGET", json.dumps(str(secret))).replace(
            "LINK_DIR", json.dumps(str(pub)))})
        mlfs = mlfs_factory(opts=[f"plugins={pdir}", "allow_other"],
                            public=True)
        iris(mlfs)
        os.chmod(mlfs.mnt / "datasets" / "iris", 0o755)
        spec = json.dumps({"dataset": "iris", "algorithm": "linker"})
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "bash", "-c", f"echo '{spec}' > {mlfs.mnt}/train/l.json"],
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        wait_status(mlfs.mnt, "l", "running\n")
        deadline = time.monotonic() + 30
        while not os.path.islink(mlfs.cache / "jobs/l/out"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        job = mlfs.mnt / "jobs/l"
        for f in ("log", "progress"):      # the job's own doing: ELOOP
            assert "ROOT-ONLY" not in read_or_errno(job / f)
        (job / "ctl").write_text("cancel\n")
        assert wait_job(mlfs.mnt, "l").startswith("failed")
        assert "ROOT-ONLY" not in read_or_errno(job / "log")
        # nothing was written through the links, nothing stored from them
        assert secret.read_text() == "ROOT-ONLY-CONTENT\n"
        assert not any(b"ROOT-ONLY" in p.read_bytes()
                       for p in mlfs.store.rglob("*") if p.is_file())
        assert not (mlfs.cache / "jobs/l").exists()
        assert sorted(os.listdir(pub)) == ["linker.c", "plugins", "secret"]
    finally:
        shutil.rmtree(pub)


def test_the_queue_is_fair_between_users(mlfs_factory):
    pub = Path(tempfile.mkdtemp(prefix="mlfs-plugins-",
                                dir=TEST_TMP or "/tmp"))
    os.chmod(pub, 0o755)
    try:
        mlfs = sleepy_mount(mlfs_factory, pub, opts=["allow_other", "jobs=1"],
                            public=True)
        spec = json.dumps(SLEEPY)
        for job in ("a1", "a2", "a3"):     # one user fills the queue
            r = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534",
                 "--clear-groups", "bash", "-c",
                 f"echo '{spec}' > {mlfs.mnt}/train/{job}.json"],
                capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        wait_status(mlfs.mnt, "a1", "running\n")
        (mlfs.mnt / "train/r1.json").write_text(       # another comes later
            json.dumps({"dataset": "iris", "algorithm": "logistic"}))
        (mlfs.mnt / "jobs/a1/ctl").write_text("cancel\n")
        # the later user's job goes before the first user's second
        assert wait_job(mlfs.mnt, "r1") == "succeeded\n"
        job_pid(mlfs, "a2")           # its "running (pid N)" line is out
        assert (mlfs.mnt / "jobs/a3/status").read_text() == "queued\n"
        log = mlfs.stderr()
        assert log.index("jobs/r1: running") < log.index("jobs/a2: running")
        for job in ("a2", "a3"):
            (mlfs.mnt / f"jobs/{job}/ctl").write_text("cancel\n")
            assert wait_job(mlfs.mnt, job) == "failed: cancelled\n"
        # a user removes their own finished job, not another's
        r = as_user(["rmdir", str(mlfs.mnt / "jobs/r1")])
        assert r.returncode != 0
        r = as_user(["rmdir", str(mlfs.mnt / "jobs/a1")])
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(pub)


def test_a_dataset_a_job_reads_is_busy(mlfs_factory, tmp_path):
    mlfs = sleepy_mount(mlfs_factory, tmp_path, opts=["jobs=1"])
    other = mlfs.mnt / "datasets/other"
    other.mkdir()
    (other / "data.csv").write_text(IRIS)
    (mlfs.mnt / "train/a.json").write_text(json.dumps(SLEEPY))
    wait_status(mlfs.mnt, "a", "running\n")
    (mlfs.mnt / "train/b.json").write_text(
        json.dumps({"dataset": "other", "algorithm": "sleepy"}))
    assert (mlfs.mnt / "jobs/b/status").read_text() == "queued\n"
    for path in ("datasets/iris", "datasets/iris/v1", "datasets/other",
                 "datasets/other/v1"):
        with pytest.raises(OSError) as e:
            os.rmdir(mlfs.mnt / path)
        assert e.value.errno == errno.EBUSY, path
    assert "job a reads v1" in mlfs.stderr()
    for job in ("a", "b"):
        (mlfs.mnt / f"jobs/{job}/ctl").write_text("cancel\n")
        assert wait_job(mlfs.mnt, job).startswith("failed: cancelled")
    os.rmdir(mlfs.mnt / "datasets/other/v1")
    os.rmdir(mlfs.mnt / "datasets/iris")


def id_iris(mlfs, name, idname):
    """iris with an id column first (ids 1000, 1001, ...) and its label."""
    lines = IRIS.splitlines()
    text = "\n".join([f"{idname},{lines[0]}"] +
                     [f"{1000 + i},{l}" for i, l in enumerate(lines[1:])])
    d = mlfs.mnt / "datasets" / name
    d.mkdir()
    (d / "data.csv").write_text(text + "\n")
    return d


def test_predict_training_csv_header_id_and_refusals(mlfs):
    """issue 11 point 3: the training CSV itself, header, id and label
    columns included, is scored with each row's id first; a header with a
    repeated or a missing column is refused with one error line."""
    d = id_iris(mlfs, "ids", "id")
    assert train(mlfs, "j", {"dataset": "ids", "algorithm": "logistic",
                             "model": "ids", "params": {"l2": 0.001}}) \
        == "succeeded\n"
    meta = json.loads((mlfs.mnt / "models/ids/v1/meta.json").read_text())
    assert meta["id"] == "id" and "id" not in meta["inputs"]
    p = mlfs.mnt / "models" / "ids" / "predict"
    r = sh(f"head -n 21 {d}/data.csv > {p}; cat {p}")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    rows = (d / "data.csv").read_text().splitlines()[1:21]
    assert len(out) == 20
    assert [l.split(",")[0] for l in out] == [str(1000 + i) for i in range(20)]
    assert all(len(l.split(",")) == 5 for l in out)
    assert sum(a.split(",")[1] == b.rsplit(",", 1)[1]
               for a, b in zip(out, rows)) >= 18
    # JSON: "id" answers first
    r = sh(f"echo '{{\"id\": \"r1\", \"sepal_length\": 5.1, \"sepal_width\": "
           f"3.5, \"petal_length\": 1.4, \"petal_width\": 0.2}}' > {p}; "
           f"cat {p}")
    js = json.loads(r.stdout)
    assert list(js)[:2] == ["id", "prediction"] and js["id"] == "r1"
    assert js["prediction"] == "setosa"
    # refused headers: one error line for the header and for each row
    r = sh(f"printf 'sepal_length,sepal_width,petal_length,sepal_length\\n"
           f"5.1,3.5,1.4,0.2\\n' > {p}; cat {p}")
    assert r.stdout == "error: sepal_length: repeated in the header\n" * 2
    r = sh(f"printf 'id,sepal_length,sepal_width,petal_length,species\\n"
           f"1,5.1,3.5,1.4,setosa\\n' > {p}; cat {p}")
    assert r.stdout == "error: petal_width: missing from the header\n" * 2
    # a first row of words is data, checked as such, not a header
    r = sh(f"echo abc,def,ghi,jkl > {p}; cat {p}")
    assert r.stdout == 'error: sepal_length: not a number "abc"\n'
    # the id role under another name: recorded, echoed, "id" is extra
    d = id_iris(mlfs, "cust", "cust_id")
    assert train(mlfs, "c", {"dataset": "cust", "algorithm": "logistic",
                             "model": "cust", "params": {"l2": 0.001}}) \
        == "succeeded\n"
    meta = json.loads((mlfs.mnt / "models/cust/v1/meta.json").read_text())
    assert meta["id"] == "cust_id"
    p = mlfs.mnt / "models" / "cust" / "predict"
    fd = os.open(p, os.O_RDWR | os.O_TRUNC)
    try:
        os.write(fd, b"id,petal_width,petal_length,sepal_width,sepal_length,"
                     b"cust_id\n9,0.2,1.4,3.5,5.1,c-7\n")
        os.write(fd, b'{"cust_id": 12, "sepal_length": 5.1, "sepal_width": '
                     b'3.5, "petal_length": 1.4, "petal_width": 0.2}\n')
        out = os.read(fd, 65536).decode().splitlines()
    finally:
        os.close(fd)
    assert out[0].startswith("c-7,setosa,")
    assert json.loads(out[1])["id"] == 12


def float32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def shortest_float_text(s):
    """Is s a decimal that reads back to a float32, with no fewer digits
    that would?"""
    v = float32(s)
    if float(s) != v and float32(s) != v:
        return False
    digits = re.sub(r"^[-0.]*|e.*$", "", s).replace(".", "")
    n = len(digits.rstrip("0")) or 1
    return n == 1 or float32(f"{v:.{n - 2}e}") != v


def test_predict_csv_answers_round_trip_a_float(mlfs):
    """issue 11 point 8: CSV answers print each probability with the
    digits its float needs (not six), no more, as sample.csv does."""
    iris(mlfs)
    assert train(mlfs, "j", {"dataset": "iris", "algorithm": "logistic",
                             "model": "iris", "params": {"l2": 0.001}}) \
        == "succeeded\n"
    v1 = mlfs.mnt / "models" / "iris" / "v1"
    sample = (v1 / "sample.csv").read_text().splitlines()
    nfeat = 4
    rows = [",".join(l.split(",")[:nfeat]) for l in sample[1:]]
    want = [",".join(l.split(",")[nfeat + 1:]) for l in sample[1:]]
    fd = os.open(v1 / "predict", os.O_RDWR)
    try:
        os.write(fd, ("\n".join(rows) + "\n").encode())
        got = os.read(fd, 1 << 20).decode().splitlines()
    finally:
        os.close(fd)
    assert got == want
    probs = [p for l in got for p in l.split(",")[1:]]
    assert all(shortest_float_text(p) for p in probs), probs
    # six digits cannot hold a float: some need more
    assert any(len(re.sub(r"^[-0.]*|e.*$", "", p).replace(".", "")) > 6
               for p in probs)
    # the probabilities of a row sum to 1 to float precision
    for l in got:
        assert abs(sum(float(p) for p in l.split(",")[1:]) - 1) < 5e-7, l


def test_predict_imputes_the_values_meta_json_records(mlfs):
    """issue 11 point 3: meta.json records each input's imputation value
    (the training split's mean; null for a categorical input, which
    encodes as no category), and an empty or missing value is answered as
    the row with that value written in."""
    rows = ["x1,x2,cat,y"]
    for i in range(300):
        x1, x2 = (i * 37 % 100) / 10, (i * 53 % 100) / 10
        c = "abc"[i % 3]
        y = 2 * x1 - x2 + {"a": 0, "b": 5, "c": -5}[c] + (i % 7) / 7
        rows.append(f"{x1},{x2},{c},{y}")
    d = mlfs.mnt / "datasets" / "reg"
    d.mkdir()
    (d / "data.csv").write_text("\n".join(rows) + "\n")
    assert train(mlfs, "lin", {"dataset": "reg", "algorithm": "linear"}) \
        == "succeeded\n"
    text = (mlfs.mnt / "models/lin/v1/meta.json").read_text()
    meta = json.loads(text)
    feats = {f["name"]: f for f in meta["features"]}
    assert feats["cat"]["impute"] is None
    # ground truth: the mean of the training split's rows
    split = (mlfs.mnt / "jobs/lin/split").read_text().splitlines()[1:]
    train_rows = [int(l.split(",")[0]) for l in split
                  if l.endswith(",train")]
    for col, k in (("x1", 0), ("x2", 1)):
        vals = [float(rows[1 + r].split(",")[k]) for r in train_rows]
        assert abs(feats[col]["impute"] - sum(vals) / len(vals)) < 1e-9
    # the value as meta.json prints it
    x1 = re.search(r'"name": "x1",[^}]*"impute": ([-0-9.e+]+)', text).group(1)
    p = mlfs.mnt / "models" / "lin" / "predict"
    fd = os.open(p, os.O_RDWR)
    try:
        os.write(fd, f"x1,x2,cat\n,2,b\nNA,2,b\n{x1},2,b\n1,2,b\n"
                 .encode())
        os.write(fd, b'{"x2": 2, "cat": "b"}\n{"x1": null, "x2": 2, '
                     b'"cat": "b"}\n')
        os.write(fd, f'{{"x1": {x1}, "x2": 2, "cat": "b"}}\n'.encode())
        out = os.read(fd, 65536).decode().splitlines()
    finally:
        os.close(fd)
    assert out[0] == out[1] == out[2] != out[3]
    js = [json.loads(l)["prediction"] for l in out[4:]]
    assert js[0] == js[1] == js[2] == float(out[0])
    assert all(shortest_float_text(a) for a in out[:4])
    # a missing category is no category: as one never seen
    r = sh(f"printf '1,2,\\n1,2,zzz\\n' > {p}; cat {p}")
    a, b = r.stdout.splitlines()
    assert a == b
# --- jobs say why they stopped (issue 11 point 7) ---

def stopped_everywhere(mlfs, job, model):
    """The job's stop record, checked to be the same in metrics.json, the
    job's log and its progress; the loss lines in jobs/<job>/metrics."""
    m = json.loads((mlfs.mnt / "models" / model / "v1" / "metrics.json")
                   .read_text())
    st = m["stopped"]
    line = f"stopped: {st['rule']} at {st['at']}: {st['why']}"
    assert line in (mlfs.mnt / "jobs" / job / "log").read_text()
    assert line in (mlfs.mnt / "jobs" / job / "progress").read_text()
    meta = json.loads((mlfs.mnt / "models" / model / "v1" / "meta.json")
                      .read_text())
    assert meta["metrics"]["stopped"] == st
    losses = [json.loads(l) for l in
              (mlfs.mnt / "jobs" / job / "metrics").read_text().splitlines()
              if json.loads(l)["name"] == "loss"]
    return st, losses


SPLIT = {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 7}


def test_mlp_early_stopping_says_the_rule_and_the_epoch(mlfs):
    iris(mlfs)
    assert train(mlfs, "es", {"dataset": "iris", "algorithm": "mlp",
                              "split": SPLIT,
                              "params": {"hidden": [16], "epochs": 2000,
                                         "learning_rate": 0.01,
                                         "n_iter_no_change": 5}}) \
        == "succeeded\n"
    st, losses = stopped_everywhere(mlfs, "es", "es")
    assert st["rule"] == "early_stopping"
    assert 6 <= st["at"] < 2000 and len(losses) == st["at"]
    assert re.fullmatch(r"validation accuracy did not improve by tol 0\.0001"
                        r" for 6 epochs \(best [0-9.]+ at epoch (\d+)\)",
                        st["why"]), st["why"]
    best = int(re.search(r"at epoch (\d+)", st["why"])[1])
    assert best == st["at"] - 6
    vals = [json.loads(l)["value"] for l in
            (mlfs.mnt / "jobs/es/metrics").read_text().splitlines()
            if json.loads(l)["name"] == "val_accuracy"]
    assert max(vals) == vals[best - 1]


def test_mlp_without_early_stopping_runs_every_epoch(mlfs):
    iris(mlfs)
    # tol 10 and n_iter_no_change 1 would stop on the training loss at
    # epoch 3: early_stopping false means every epoch all the same
    assert train(mlfs, "all", {"dataset": "iris", "algorithm": "mlp",
                               "split": SPLIT,
                               "params": {"hidden": [8], "epochs": 40,
                                          "early_stopping": False,
                                          "n_iter_no_change": 1,
                                          "tol": 10}}) == "succeeded\n"
    st, losses = stopped_everywhere(mlfs, "all", "all")
    assert st == {"rule": "completed", "at": 40, "why": "ran all 40 epochs"}
    assert [l["step"] for l in losses] == list(range(1, 41))
    assert (mlfs.mnt / "jobs/all/progress").read_text().startswith("100% ")


def test_logistic_says_it_converged_on_tol_or_ran_out_of_iterations(mlfs):
    iris(mlfs)
    assert train(mlfs, "tol", {"dataset": "iris", "algorithm": "logistic",
                               "params": {"tol": 0.05, "max_iter": 1000}}) \
        == "succeeded\n"
    st, losses = stopped_everywhere(mlfs, "tol", "tol")
    assert st["rule"] == "tol" and 0 < st["at"] < 1000
    assert len(losses) == st["at"]
    assert re.fullmatch(r"largest gradient \S+ <= tol 0\.05 after "
                        f"{st['at']} iterations", st["why"]), st["why"]
    assert train(mlfs, "cap", {"dataset": "iris", "algorithm": "logistic",
                               "params": {"tol": 1e-12, "max_iter": 3}}) \
        == "succeeded\n"
    st, losses = stopped_everywhere(mlfs, "cap", "cap")
    assert st["rule"] == "max_iter" and st["at"] == 3 and len(losses) == 3
    assert st["why"].startswith("reached max_iter 3 without converging")
    # sgd: five epochs without the loss falling by tol
    assert train(mlfs, "sgd", {"dataset": "iris", "algorithm": "logistic",
                               "params": {"solver": "sgd", "tol": 1,
                                          "epochs": 100}}) == "succeeded\n"
    st, losses = stopped_everywhere(mlfs, "sgd", "sgd")
    # the first epoch sets the best loss; five more did not lower it
    assert st["rule"] == "tol" and st["at"] == 6 and len(losses) == 6
    assert st["why"].startswith("training loss did not fall by tol 1 for 5")


def test_a_diverged_fit_says_so_and_fails(mlfs):
    iris(mlfs)
    out = train(mlfs, "div", {"dataset": "iris", "algorithm": "logistic",
                              "params": {"solver": "sgd",
                                         "learning_rate": 1e30}})
    assert out == 'failed: sgd diverged: lower "learning_rate" (1e+30)\n'
    log = (mlfs.mnt / "jobs/div/log").read_text()
    said = re.search(r"stopped: diverged at (\d+): the training loss is \S+ "
                     r"at epoch \1: lower \"learning_rate\" \(1e\+30\)\n",
                     log)
    assert said, log
    assert said[0].strip() in (mlfs.mnt / "jobs/div/progress").read_text()


def test_kmeans_and_linear_say_why_they_stopped(mlfs):
    iris(mlfs)
    assert train(mlfs, "km", {"dataset": "iris", "algorithm": "kmeans",
                              "params": {"k": 3, "n_init": 2}}) \
        == "succeeded\n"
    st, _ = stopped_everywhere(mlfs, "km", "km")
    assert st["rule"] == "tol" and st["at"] >= 1
    assert re.match(r"init [12] of 2, the lowest inertia: ", st["why"])
    assert train(mlfs, "km1", {"dataset": "iris", "algorithm": "kmeans",
                               "params": {"k": 3, "max_iter": 1, "tol": 0}}) \
        == "succeeded\n"
    st, _ = stopped_everywhere(mlfs, "km1", "km1")
    assert st["rule"] == "max_iter" and st["at"] == 1
    assert train(mlfs, "lin", {"dataset": "iris", "algorithm": "linear",
                               "label": "petal_width"}) == "succeeded\n"
    st, _ = stopped_everywhere(mlfs, "lin", "lin")
    assert st["rule"] == "completed" and st["at"] == 1


def test_parallel_search_ends_every_time(mlfs):
    # the job once waited for a trial that had finished while it joined
    # another (a lost wakeup), and hung in about one search in 30
    iris(mlfs)
    spec = {"dataset": "iris", "algorithm": "logistic",
            "search": {"method": "grid", "trials": 20, "parallel": 2,
                       "space": {"l2": {"log_uniform": [1e-3, 1]},
                                 "max_iter": {"choice": [50, 100]}}}}
    for i in range(24):
        spec["model"] = f"g{i}"
        assert train(mlfs, f"g{i}", spec, timeout=30) == "succeeded\n", i


def test_predict_after_a_model_is_made_again_uses_the_new_one(mlfs):
    """Predict keeps versions' manifests parsed (by name, incarnation and
    version): a model removed and made again under its name, with a v1
    of other content, must answer with the new v1."""
    iris(mlfs)
    flipped = mlfs.mnt / "datasets/flipped"
    flipped.mkdir()
    rows = IRIS.splitlines()
    swap = {"setosa": "virginica", "virginica": "setosa"}
    (flipped / "data.csv").write_text("\n".join(
        [rows[0]] + [",".join(r.split(",")[:4] + [
            swap.get(r.split(",")[4], r.split(",")[4])])
            for r in rows[1:]]) + "\n")
    spec = {"dataset": "iris", "algorithm": "logistic", "model": "m"}
    assert train(mlfs, "a1", spec) == "succeeded\n"
    ask = f"echo 5.1,3.5,1.4,0.2 > {mlfs.mnt}/models/m/predict; " \
          f"cat {mlfs.mnt}/models/m/predict"
    assert sh(ask).stdout.startswith("setosa,")
    assert sh(f"cat {mlfs.mnt}/models/m/v1/meta.json").returncode == 0
    r = sh(f"rmdir {mlfs.mnt}/models/m")
    assert r.returncode == 0, r.stderr
    spec = {"dataset": "flipped", "algorithm": "logistic", "model": "m"}
    assert train(mlfs, "a2", spec) == "succeeded\n"
    assert os.readlink(mlfs.mnt / "models/m/latest") == "v1"
    assert sh(ask).stdout.startswith("virginica,")
