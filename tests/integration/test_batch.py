"""batch/<name>.json: a dataset version scored by a model (or the version a
deployment serves) out of process, as the writer, into a new version of
another dataset, through a real mount."""
import json
import os

import pytest

from conftest import as_user, wait_job
from test_train import IRIS, iris, sh, train


def model(mlfs, name="m"):
    iris(mlfs)
    assert train(mlfs, "t", {"dataset": "iris", "algorithm": "logistic",
                             "model": name}) == "succeeded\n"


def same_answers(a, b):
    """The same classes, and probabilities within 1e-6 (their last digits
    depend on how many rows one BLAS call scores)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = x.split(","), y.split(",")
        assert x[0] == y[0] and len(x) == len(y), (x, y)
        assert all(abs(float(u) - float(v)) <= 1e-6
                   for u, v in zip(x[1:], y[1:])), (x, y)


def predict_all(mlfs, path, rows):
    fd = os.open(path, os.O_RDWR)
    os.write(fd, rows.encode())
    got = b""
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        got += b
    os.close(fd)
    return got.decode().splitlines()


def batch(mlfs, name, spec):
    return sh(f"cat > {mlfs.mnt}/batch/{name}.json", input=json.dumps(spec))


def test_batch_scores_a_dataset_into_another(mlfs):
    model(mlfs)
    r = batch(mlfs, "s1", {"model": "m@1", "dataset": "iris@1",
                           "output": "scored", "keep": ["species"]})
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "s1") == "succeeded\n"
    assert os.listdir(mlfs.mnt / "batch") == ["s1.json"]
    assert json.loads((mlfs.mnt / "batch/s1.json").read_text())[
        "output"] == "scored"
    out = (mlfs.mnt / "datasets/scored/v1/data.csv").read_text().splitlines()
    assert out[0] == ("species,prediction,p_setosa,p_versicolor,"
                      "p_virginica")
    assert len(out) == 151
    # the answers are the model's predict on the same rows
    feats = "\n".join(",".join(l.split(",")[:4])
                      for l in IRIS.splitlines()[1:]) + "\n"
    p = mlfs.mnt / "models/m/v1/predict"
    fd = os.open(p, os.O_RDWR)
    os.write(fd, feats.encode())
    got = b""
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        got += b
    os.close(fd)
    same_answers([l.split(",", 1)[1] for l in out[1:]],
                 got.decode().splitlines())
    assert [l.split(",")[0] for l in out[1:]] == \
        [l.split(",")[4] for l in IRIS.splitlines()[1:]]
    lineage = json.loads((mlfs.mnt / "datasets/scored/v1/lineage")
                         .read_text())
    assert lineage["made_by"] == "batch"
    assert lineage["detail"] == "jobs/s1: models/m/v1 on datasets/iris/v1"
    job = mlfs.mnt / "jobs/s1"
    assert (job / "progress").read_text().startswith("100%")
    assert "scored 150 rows" in (job / "log").read_text()
    # again, into the same output: a second version only if it differs
    r = batch(mlfs, "s2", {"model": "m", "dataset": "iris",
                           "output": "scored", "keep": ["species"]})
    assert wait_job(mlfs.mnt, "s2") == "succeeded\n"
    assert not (mlfs.mnt / "datasets/scored/v2").exists()
    # the name of any job is taken
    r = batch(mlfs, "t", {"model": "m", "dataset": "iris", "output": "x"})
    assert r.returncode != 0 and "File exists" in r.stderr


def test_a_deployment_stands_for_its_model(mlfs):
    model(mlfs)
    (mlfs.mnt / "deployments/web").mkdir()
    (mlfs.mnt / "deployments/web/spec").write_text(
        '{"candidates": ["m@1"]}')
    r = batch(mlfs, "d1", {"deployment": "web", "dataset": "iris@1",
                           "output": "viaweb"})
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "d1") == "succeeded\n"
    lineage = json.loads((mlfs.mnt / "datasets/viaweb/v1/lineage")
                         .read_text())
    assert "models/m/v1" in lineage["detail"]
    head = (mlfs.mnt / "datasets/viaweb/v1/data.csv").read_text()
    assert head.startswith("prediction,p_setosa,")


BAD = [
    ('{"dataset": "iris", "output": "o"}', "model", "missing"),
    ('{"model": "m", "deployment": "web", "dataset": "iris", '
     '"output": "o"}', "deployment", "not both"),
    ('{"model": "m", "output": "o"}', "dataset", "missing"),
    ('{"model": "m", "dataset": "iris"}', "output", "missing"),
    ('{"model": "m", "dataset": "iris", "output": "../o"}', "output",
     "not a dataset name"),
    ('{"model": "m", "dataset": "iris", "output": "o", "keep": "species"}',
     "keep", "must be a list"),
    ('{"model": "m", "dataset": "iris", "output": "o", "keep": ["x"]}',
     "keep", 'no column "x"'),
    ('{"model": "nope", "dataset": "iris", "output": "o"}', "model",
     'no model "nope"'),
    ('{"model": "m@7", "dataset": "iris", "output": "o"}', "model",
     "has no version 7"),
    ('{"model": "m", "dataset": "iris@9", "output": "o"}', "dataset",
     "has no version 9"),
    ('{"model": "m", "dataset": "iris", "output": "o", "rows": 3}', "rows",
     "unknown field"),
    ('{"model": "m",\n "dataset": "other", "output": "o"}', "dataset",
     'has no column "sepal_length"'),
]


@pytest.mark.parametrize("text,field,msg", BAD)
def test_bad_batch_specs_fail_the_write(mlfs, text, field, msg):
    model(mlfs)
    (mlfs.mnt / "datasets/other").mkdir()
    (mlfs.mnt / "datasets/other/data.csv").write_text("a,b\n1,2\n")
    r = sh(f"cat > {mlfs.mnt}/batch/bad.json", input=text)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    err = mlfs.errors().splitlines()[-1]
    at = text.find(f'"{field}"')
    line = text[:at].count("\n") + 1 if at >= 0 else 1
    assert f"batch/bad.json:{line}:" in err, err
    assert msg in err, err
    assert not (mlfs.mnt / "jobs/bad").exists()
    assert not (mlfs.mnt / "datasets/o").exists()


def test_other_users_outputs_and_models(mlfs_factory):
    """A batch runs as its writer: it may not read a private model, nor
    write into another user's dataset; a new output is the writer's and
    no more visible than the model and data it comes from."""
    m = mlfs_factory(opts=["allow_other"], public=True)
    model(m)
    (m.mnt / "datasets/rootout").mkdir()
    (m.mnt / "datasets/rootout/data.csv").write_text("a\n1\n")
    os.chmod(m.mnt / "datasets/rootout", 0o755)
    r = as_user(["bash", "-c", "echo '{\"model\": \"m\", \"dataset\": "
                 "\"iris\", \"output\": \"rootout\"}' > "
                 f"{m.mnt}/batch/b1.json"])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    r = as_user(["bash", "-c", "echo '{\"model\": \"m\", \"dataset\": "
                 "\"iris\", \"output\": \"mine\"}' > "
                 f"{m.mnt}/batch/b2.json"])
    assert r.returncode == 0, r.stderr
    assert wait_job(m.mnt, "b2") == "succeeded\n"
    st = os.stat(m.mnt / "datasets/mine")
    assert st.st_uid == 65534
    os.chmod(m.mnt / "models/m", 0o700)
    r = as_user(["bash", "-c", "echo '{\"model\": \"m\", \"dataset\": "
                 "\"iris\", \"output\": \"mine\"}' > "
                 f"{m.mnt}/batch/b3.json"])
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_a_large_dataset_is_scored_in_parts(mlfs):
    """Past 128 KiB the records are cut in parts, a thread each: the
    answers are the same, in order, and a quoted field keeps it whole."""
    model(mlfs)
    src = IRIS.splitlines()
    body = [src[1 + i % 150] for i in range(6000)]
    big = mlfs.mnt / "datasets/big"
    big.mkdir()
    (big / "data.csv").write_text(src[0] + "\n" + "\n".join(body) + "\n")
    r = batch(mlfs, "p", {"model": "m", "dataset": "big", "output": "bo",
                          "keep": ["species"]})
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "p") == "succeeded\n"
    assert "(2 threads)" in (mlfs.mnt / "jobs/p/log").read_text() or \
        os.cpu_count() == 1
    out = (mlfs.mnt / "datasets/bo/v1/data.csv").read_text().splitlines()
    assert len(out) == 6001
    assert [l.split(",")[0] for l in out[1:]] == \
        [l.split(",")[4] for l in body]
    feats = "\n".join(",".join(l.split(",")[:4]) for l in body) + "\n"
    same_answers([l.split(",", 1)[1] for l in out[1:]],
                 predict_all(mlfs, mlfs.mnt / "models/m/v1/predict", feats))
    # a quoted field: one part, the same answers
    q = [l.replace("setosa", '"set,osa"') for l in body]
    (big / "data.csv").write_text(src[0] + "\n" + "\n".join(q) + "\n")
    r = batch(mlfs, "q", {"model": "m", "dataset": "big", "output": "bq",
                          "keep": ["species"]})
    assert wait_job(mlfs.mnt, "q") == "succeeded\n"
    assert "(1 threads)" in (mlfs.mnt / "jobs/q/log").read_text()
    outq = (mlfs.mnt / "datasets/bq/v1/data.csv").read_text().splitlines()
    assert outq[1].startswith('"set,osa",setosa,')
    assert [l.split(",")[-3:] for l in outq[1:] if "set,osa" not in l][:5] \
        == [l.split(",")[-3:] for l in out[1:] if "setosa," not in l[:7]][:5]


def test_a_value_the_model_cannot_read_fails_the_job_naming_the_row(mlfs):
    model(mlfs)
    src = IRIS.splitlines()
    rows = src[1:4] + ["abc" + src[4][src[4].index(","):]] + src[5:8]
    d = mlfs.mnt / "datasets/texty"
    d.mkdir()
    (d / "data.csv").write_text(src[0] + "\n" + "\n".join(rows) + "\n")
    r = batch(mlfs, "tx", {"model": "m", "dataset": "texty", "output": "o"})
    assert r.returncode == 0, r.stderr
    st = wait_job(mlfs.mnt, "tx")
    assert st == 'failed: row 4: sepal_length: not a number "abc"\n', st
    assert not (mlfs.mnt / "datasets/o").exists()
