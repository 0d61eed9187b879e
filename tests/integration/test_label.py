"""datasets/<d>/label/: the queue of rows whose label is empty, keyed
stably, and its counts, through a real mount."""
import errno
import json
import math
import os

from conftest import as_user
from test_train import IRIS, iris, sh, train


def test_queue_lists_unlabelled_rows_by_a_stable_key(mlfs_factory):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    d = mlfs.mnt / "datasets/photos"
    d.mkdir()
    (d / "data.csv").write_text('x,note,label\n1,"a,b",cat\n2,c,\n'
                                '3,d,dog\n4,"say ""hi""",\n')
    assert (d / "label/queue").read_text() == \
        'key,x,note\nv1:2,2,c\nv1:4,4,"say ""hi"""\n'
    assert json.loads((d / "label/stats").read_text()) == {
        "version": 1, "label": "label", "rows": 4, "labelled": 2,
        "unlabelled": 2}
    # with an id column the key is the row's id
    r = sh(f"cat > {d}/schema", input=json.dumps(
        {"columns": [{"name": "x", "role": "id"}]}))
    assert r.returncode == 0, r.stderr
    assert os.readlink(d / "latest") == "v2"
    assert (d / "label/queue").read_text() == \
        'key,note\n2,c\n4,"say ""hi"""\n'
    # a new version is what the queue shows
    (d / "data.csv").write_text("x,note,label\n1,a,cat\n")
    assert (d / "label/queue").read_text() == "key,note\n"   # x: the id
    assert json.loads((d / "label/stats").read_text())["unlabelled"] == 0
    # read-only, and private with the dataset
    r = sh(f"echo x > {d}/label/queue")
    assert r.returncode != 0
    os.chmod(d, 0o700)
    r = as_user(["cat", f"{d}/label/queue"])
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_queue_of_a_dataset_without_label_or_versions(mlfs):
    d = mlfs.mnt / "datasets/plain"
    d.mkdir()
    assert (d / "label/queue").read_text() == ""
    assert json.loads((d / "label/stats").read_text()) == {"version": None}
    (d / "data.csv").write_text("a,b\n1,2\n")
    schema = json.loads((d / "schema").read_text())
    if schema.get("label") is None:
        assert (d / "label/queue").read_text() == ""
        assert json.loads((d / "label/stats").read_text())["label"] is None


def errors_of(mlfs):
    return (mlfs.mnt / ".mlfs/errors").read_text()


def test_answers_publish_one_version_a_handle(mlfs):
    d = mlfs.mnt / "datasets/pets"
    d.mkdir()
    (d / "data.csv").write_text("x,note,label\n1,a,cat\n2,b,\n3,c,dog\n"
                                "4,d,\n5,e,\n")
    assert (d / "label/queue").read_text() == \
        "key,x,note\nv1:2,2,b\nv1:4,4,d\nv1:5,5,e\n"
    # one handle, several writes, a header: one version at close
    with open(d / "label/answers", "w") as f:
        f.write("key,label\nv1:2,dog\n")
        f.flush()
        f.write("v1:4,cat")       # the last line ends at close
    assert os.readlink(d / "latest") == "v2"
    assert (d / "v2/data.csv").read_text() == \
        "x,note,label\n1,a,cat\n2,b,dog\n3,c,dog\n4,d,cat\n5,e,\n"
    lineage = json.loads((d / "v2/lineage").read_text())
    assert lineage["made_by"] == "label" and lineage["parent"] == 1
    assert (d / "label/queue").read_text() == "key,x,note\nv2:5,5,e\n"
    # a key of v1 still names its row: labelling keeps rows in place
    r = sh(f"echo v1:5,dog > {d}/label/answers")
    assert r.returncode == 0, r.stderr
    assert os.readlink(d / "latest") == "v3"
    assert json.loads((d / "label/stats").read_text())["unlabelled"] == 0
    # the same label again changes nothing; another one is stale
    r = sh(f"echo v3:5,dog > {d}/label/answers")
    assert r.returncode == 0, r.stderr
    assert os.readlink(d / "latest") == "v3"
    r = sh(f"echo v2:5,cat > {d}/label/answers")
    assert r.returncode != 0 and "Stale file handle" in r.stderr
    assert 'label/answers:1:1: row "v2:5" was labelled "dog" in v3' in \
        errors_of(mlfs)
    assert os.readlink(d / "latest") == "v3"


BAD_ANSWERS = [
    ("v1:2,horse\n", "Invalid argument",
     ':1:1: label "horse" is not a class of this dataset (it has 2)'),
    ("v1:2,cat\nnope,cat\n", "Invalid argument",
     ':2:1: "nope": not a key (v<n>:<row>) of v1'),
    ("v1:2\n", "Invalid argument", ":1:1: expected key,label (2 fields), "
     "got 1"),
    ("v1:2,cat,extra\n", "Invalid argument", ":1:1: expected key,label"),
    ("v1:2,\n", "Invalid argument", ":1:1: an empty label"),
    ("v1:9,cat\n", "Invalid argument", ':1:1: "v1:9": v1 has 4 rows'),
    ("v7:2,cat\n", "Invalid argument", ':1:1: "v7": no version v7 yet'),
    ('v1:2,"cat\n', "Invalid argument", ":1:"),
]


def test_bad_answers_fail_the_write_and_change_nothing(mlfs):
    d = mlfs.mnt / "datasets/bad"
    d.mkdir()
    (d / "data.csv").write_text("x,label\n1,cat\n2,\n3,dog\n4,\n")
    for text, err, msg in BAD_ANSWERS:
        fd = os.open(d / "label/answers", os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, text.encode())     # one write: all its lines, or
            raise AssertionError(text)      # none
        except OSError as e:
            assert e.errno == errno.EINVAL, text
        os.close(fd)
        assert msg.replace('"v7"', '"v7:2"') in errors_of(mlfs), text
        assert os.readlink(d / "latest") == "v1", text
    # a dataset without a label column takes none
    p = mlfs.mnt / "datasets/plain"
    p.mkdir()
    (p / "data.csv").write_text("a,b\n1,x\n")
    if json.loads((p / "schema").read_text()).get("label") is None:
        r = sh(f"echo v1:1,cat > {p}/label/answers")
        assert r.returncode != 0 and "Invalid argument" in r.stderr


def test_answers_by_id_and_changed_rows_are_stale(mlfs):
    d = mlfs.mnt / "datasets/ids"
    d.mkdir()
    (d / "data.csv").write_text("id,x,label\nu1,1,1\nu2,2,\nu3,3,0\n"
                                "u4,4,\n")
    assert json.loads((d / "schema").read_text())["label"] == "label"
    assert (d / "label/queue").read_text() == "key,x\nu2,2\nu4,4\n"
    r = sh(f"printf 'u2,0\\nu4,1.0\\n' > {d}/label/answers")
    assert r.returncode == 0, r.stderr
    assert (d / "latest/data.csv").read_text() == \
        "id,x,label\nu1,1,1\nu2,2,0\nu3,3,0\nu4,4,1.0\n"
    r = sh(f"echo u9,1 > {d}/label/answers")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert 'no row has id "u9" in v2' in errors_of(mlfs)
    r = sh(f"echo u3,7 > {d}/label/answers")     # not a class
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    # a row changed under a v<n>:<r> key since the labeller read it
    e = mlfs.mnt / "datasets/rows"
    e.mkdir()
    (e / "data.csv").write_text("x,label\n1,a\n2,\n")
    (e / "data.csv").write_text("x,label\n1,a\n9,\n")
    r = sh(f"echo v1:2,a > {e}/label/answers")
    assert r.returncode != 0 and "Stale file handle" in r.stderr
    assert 'row "v1:2" is not the same in v2' in errors_of(mlfs)
    assert os.readlink(e / "latest") == "v2"


def test_two_labellers_never_overwrite_each_other(mlfs):
    d = mlfs.mnt / "datasets/race"
    d.mkdir()
    (d / "data.csv").write_text("x,label\n1,a\n2,\n3,\n4,b\n")
    a = open(d / "label/answers", "w")
    a.write("v1:2,a\n")
    a.flush()
    b = open(d / "label/answers", "w")
    b.write("v1:2,b\nv1:3,a\n")
    b.flush()
    b.close()                                     # publishes v2
    assert (d / "latest/data.csv").read_text() == \
        "x,label\n1,a\n2,b\n3,a\n4,b\n"
    a.write("v1:3,a\n")   # the same label: fine
    try:
        a.close()         # v1:2 is "b" now: judged again, refused
        raise AssertionError("close succeeded")
    except OSError as e:
        assert e.errno == errno.ESTALE
    assert os.readlink(d / "latest") == "v2"
    # two handles on different rows both land
    (d / "data.csv").write_text("x,label\n1,a\n2,\n3,\n4,b\n")
    v = os.readlink(d / "latest")
    n = int(v[1:])
    a = open(d / "label/answers", "w")
    b = open(d / "label/answers", "w")
    a.write(f"{v}:2,a\n")
    b.write(f"{v}:3,b\n")
    a.close()
    b.close()
    assert os.readlink(d / "latest") == f"v{n + 2}"
    assert (d / "latest/data.csv").read_text() == \
        "x,label\n1,a\n2,a\n3,b\n4,b\n"


def test_labelling_is_for_the_datasets_writers(mlfs_factory):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    d = mlfs.mnt / "datasets/team"
    d.mkdir()
    (d / "data.csv").write_text("x,label\n1,a\n2,\n")
    r = as_user(["sh", "-c", f"echo v1:2,a > {d}/label/answers"])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_user(["bash", "-c", f"echo m > {d}/label/model"])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    os.chmod(d, 0o777)
    r = as_user(["sh", "-c", f"echo v1:2,a > {d}/label/answers"])
    assert r.returncode == 0, r.stderr
    lineage = json.loads((d / "latest/lineage").read_text())
    assert lineage["made_by"] == "label" and lineage["uid"] == 65534


def entropy(ps):
    return -sum(p * math.log(p) for p in ps if p > 0)


def test_model_orders_the_queue_most_uncertain_first(mlfs):
    iris(mlfs)
    spec = {"dataset": "iris", "algorithm": "logistic", "model": "flower",
            "params": {"l2": 0.01}}
    assert train(mlfs, "jl", spec) == "succeeded\n"
    rows = IRIS.splitlines()
    pool = mlfs.mnt / "datasets/pool"
    pool.mkdir()
    # 40 rows, every 4th kept labelled
    body = [l if i % 4 == 0 else l.rsplit(",", 1)[0] + ","
            for i, l in enumerate(rows[1:150:3])]
    (pool / "data.csv").write_text(rows[0] + "\n" + "\n".join(body) + "\n")
    plain = (pool / "label/queue").read_text().splitlines()
    for bad, msg in [("nosuch", 'no model "nosuch"'),
                     ("flower@9", "has no version 9")]:
        r = sh(f"echo {bad} > {pool}/label/model")
        assert r.returncode != 0 and "Invalid argument" in r.stderr, bad
        assert msg in errors_of(mlfs), bad
    r = sh(f"echo flower > {pool}/label/model")
    assert r.returncode == 0, r.stderr
    assert (pool / "label/model").read_text() == "flower\n"
    queue = (pool / "label/queue").read_text().splitlines()
    assert queue[0] == plain[0] and sorted(queue) == sorted(plain)
    # the model's own probabilities say the order
    feats = "\n".join(",".join(l.split(",")[1:]) for l in queue[1:])
    r = sh(f"exec 3>{mlfs.mnt}/models/flower/predict; "
           f"printf '%s\\n' '{queue[0].split(',', 1)[1]}' >&3; "
           f"cat >&3; exec 3>&-; cat {mlfs.mnt}/models/flower/predict",
           input=feats + "\n")
    answers = r.stdout.splitlines()
    ents = [entropy([float(p) for p in a.split(",")[1:]]) for a in answers]
    assert len(ents) == len(queue) - 1
    assert all(ents[i] >= ents[i + 1] - 1e-6 for i in range(len(ents) - 1))
    assert ents[0] > ents[-1]
    # cleared by an empty line
    r = sh(f"echo > {pool}/label/model")
    assert r.returncode == 0, r.stderr
    assert (pool / "label/model").read_text() == ""
    assert (pool / "label/queue").read_text().splitlines() == plain
