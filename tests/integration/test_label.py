"""datasets/<d>/label/: the queue of rows whose label is empty, keyed
stably, and its counts, through a real mount."""
import json
import os

from conftest import as_user
from test_train import sh


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
