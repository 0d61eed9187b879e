"""datasets/<d>/prepare through a real mount: a spec of prep steps
(impute, balance) checked as written, run as job <d>-prepare-<n> as the
writer, and published as a version whose lineage names every step."""
import csv
import io
import json
import os
import random

from conftest import as_user
from test_train import sh, wait_job


def imbalanced(d, n_major=200, n_minor=20, seed=1):
    rnd = random.Random(seed)
    rows = ["x1,x2,colour,label"]
    for i in range(n_major):
        x1 = "" if i % 10 == 0 else f"{rnd.gauss(0, 1):.4f}"
        rows.append(f"{x1},{rnd.gauss(0, 1):.4f},"
                    f"{rnd.choice(['red', 'blue'])},no")
    for i in range(n_minor):
        rows.append(f"{rnd.gauss(3, 1):.4f},{rnd.gauss(3, 1):.4f},"
                    f"{rnd.choice(['red', 'green'])},yes")
    d.mkdir()
    (d / "data.csv").write_text("\n".join(rows) + "\n")


def table(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_impute_then_smote_makes_a_version_with_its_lineage(mlfs):
    d = mlfs.mnt / "datasets/shop"
    imbalanced(d)
    spec = {"steps": [{"impute": {"numeric": "median"}},
                      {"balance": {"method": "smote", "k": 5}}],
            "seed": 7}
    r = sh(f"cat > {d}/prepare", input=json.dumps(spec))
    assert r.returncode == 0, r.stderr
    assert (d / "prepare").read_text() == "jobs/shop-prepare-1\n"
    assert wait_job(mlfs.mnt, "shop-prepare-1") == "succeeded\n"
    assert os.readlink(d / "latest") == "v2"
    rows = table(d / "v2/data.csv")
    labels = [r["label"] for r in rows]
    assert labels.count("yes") == labels.count("no") == 200
    assert all(r["x1"] != "" for r in rows)          # imputed
    # the first 220 rows are the input's, in order, imputed
    src = table(d / "v1/data.csv")
    assert [r["x2"] for r in rows[:220]] == [r["x2"] for r in src]
    lineage = json.loads((d / "v2/lineage").read_text())
    assert lineage["made_by"] == "prepare"
    detail = json.loads(lineage["detail"])
    assert detail["from"] == "shop" and detail["version"] == 1
    assert detail["seed"] == 7
    assert [s["plugin"] for s in detail["steps"]] == ["impute", "balance"]
    assert detail["steps"][1]["params"] == {"method": "smote", "k": 5}
    assert "path" not in detail["steps"][0]
    # the same spec and seed: the same rows (a new version or none)
    r = sh(f"cat > {d}/prepare", input=json.dumps(
        {**spec, "dataset": "shop@1", "output": "shop2"}))
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "shop-prepare-2") == "succeeded\n"
    assert (mlfs.mnt / "datasets/shop2/v1/data.csv").read_text() == \
        (d / "v2/data.csv").read_text()
    log = (mlfs.mnt / "jobs/shop-prepare-2/log").read_text()
    assert "step 2 (balance)" in log


BAD = [
    ("{\"steps\": []}", "steps"),
    ("{\"steps\": [{\"nosuch\": {}}]}", "no prep plugin \"nosuch\""),
    ("{\"steps\": [{\"balance\": {\"method\": \"magic\"}}]}", "method"),
    ("{\"steps\": [{\"balance\": {}, \"impute\": {}}]}", "one plugin a step"),
    ("{\"steps\": [{\"impute\": {}}], \"seed\": -1}", "seed"),
    ("{\"steps\": [{\"impute\": {}}], \"output\": \"../x\"}", "output"),
    ("{\"steps\": [{\"impute\": {}}], \"colour\": 1}", "unknown field"),
    ("{\"steps\": [{\"impute\": {}}], \"dataset\": \"nope@1\"}", "nope"),
    ("{\"steps\": [{\"impute\": {}}]", "end of file"),
]


def test_bad_specs_change_nothing_and_say_where(mlfs):
    d = mlfs.mnt / "datasets/shop"
    imbalanced(d)
    for text, why in BAD:
        r = sh(f"printf '%s' '{text}' > {d}/prepare")
        # a spec cut short is judged at close, whose error bash ignores
        assert r.returncode != 0 or why == "end of file", text
        assert r.returncode == 0 or "Invalid argument" in r.stderr or \
            "No such file" in r.stderr, (text, r.stderr)
        err = mlfs.errors().splitlines()[-1]
        assert "datasets/shop/prepare" in err and why in err, (text, err)
    assert (d / "prepare").read_text() == ""
    assert os.readlink(d / "latest") == "v1"
    assert not any(j.startswith("shop-prepare")
                   for j in os.listdir(mlfs.mnt / "jobs"))


def test_prepare_runs_as_the_writer(mlfs_factory):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    d = mlfs.mnt / "datasets/shop"
    imbalanced(d)
    os.chmod(d, 0o755)
    spec = json.dumps({"steps": [{"impute": {}}]})
    # nobody may read root's dataset but not add versions to it
    r = as_user(["bash", "-c", f"echo '{spec}' > {d}/prepare"])
    assert r.returncode != 0
    # into a dataset of nobody's own: the job and the version are theirs
    r = as_user(["bash", "-c", f"echo '{json.dumps({'steps': [{'impute': {}}], 'output': 'mine'})}' > {d}/prepare"])
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "shop-prepare-1") == "succeeded\n"
    assert os.stat(mlfs.mnt / "jobs/shop-prepare-1").st_uid == 65534
    assert os.stat(mlfs.mnt / "datasets/mine").st_uid == 65534
    os.chmod(d, 0o700)
    r = as_user(["bash", "-c", f"echo '{spec}' > {d}/prepare"])
    assert r.returncode != 0
