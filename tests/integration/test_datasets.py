"""Datasets through the mount: versions, schema, stats, aliases, removal,
bad input, crash safety and index rebuilds."""
import errno
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

IRIS_HEAD = "sepal_length,sepal_width,petal_length,petal_width,species\n"
ROWS = [
    "5.1,3.5,1.4,0.2,setosa",
    "4.9,3.0,1.4,0.2,setosa",
    "7.0,3.2,4.7,1.4,versicolor",
    "6.4,3.2,4.5,1.5,versicolor",
    "6.3,3.3,6.0,2.5,virginica",
    "5.8,2.7,5.1,1.9,virginica",
]
IRIS = IRIS_HEAD + "\n".join(ROWS) + "\n"


def sh(cmd, **kw):
    return subprocess.run(["bash", "-c", cmd], capture_output=True,
                          text=True, timeout=60, **kw)


def make(mlfs, name="iris", content=IRIS, tmp=None):
    d = mlfs.mnt / "datasets" / name
    d.mkdir()
    if content is not None:
        (d / "data.csv").write_text(content)
    return d


def versions(d):
    return sorted(n for n in os.listdir(d) if n[0] == "v" and n[1:].isdigit())


def test_mkdir_cp_makes_versions(mlfs, tmp_path):
    src = tmp_path / "iris.csv"
    src.write_text(IRIS)
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    assert sorted(os.listdir(d)) == ["data.csv", "label", "next", "prepare",
                                    "schedule", "schema", "source", "stats",
                                    "watch"]
    r = sh(f"cp {src} {d}/data.csv")
    assert r.returncode == 0, r.stderr
    assert versions(d) == ["v1"]
    assert os.readlink(d / "latest") == "v1"
    assert (d / "data.csv").read_text() == IRIS
    assert (d / "v1" / "data.csv").read_text() == IRIS
    assert sorted(os.listdir(d / "v1")) == ["data.csv", "lineage", "next",
                                            "schema", "stats"]
    assert os.stat(d / "v1" / "data.csv").st_size == len(IRIS)
    # a second, different copy makes v2; v1 is unchanged
    src.write_text(IRIS + "5.0,3.6,1.4,0.2,setosa\n")
    assert sh(f"cp {src} {d}/data.csv").returncode == 0
    assert versions(d) == ["v1", "v2"]
    assert os.readlink(d / "latest") == "v2"
    assert (d / "v1" / "data.csv").read_text() == IRIS
    # identical content makes no new version
    assert sh(f"cp {src} {d}/data.csv").returncode == 0
    assert versions(d) == ["v1", "v2"]
    lin = json.loads((d / "v2" / "lineage").read_text())
    assert lin["parent"] == 1 and lin["made_by"] == "write"
    assert lin["size"] == len(IRIS) + 23 and len(lin["hash"]) == 32
    assert lin["detail"] == "cp"
    # the store holds the truth: a manifest and a content-addressed blob
    man = json.loads((mlfs.store / "datasets/iris/v2.json").read_text())
    blob = mlfs.store / man["blob"]
    assert blob.read_text() == IRIS + "5.0,3.6,1.4,0.2,setosa\n"
    assert man["hash"] in man["blob"]


def test_shell_redirection_and_append(mlfs, tmp_path):
    d = make(mlfs, content=None)
    r = sh(f"printf '%s' '{IRIS}' > {d}/data.csv")
    assert r.returncode == 0, r.stderr
    assert versions(d) == ["v1"]
    r = sh(f"echo '5.0,3.6,1.4,0.2,setosa' >> {d}/data.csv")
    assert r.returncode == 0, r.stderr
    assert versions(d) == ["v1", "v2"]
    assert (d / "v2" / "data.csv").read_text() == \
        IRIS + "5.0,3.6,1.4,0.2,setosa\n"
    # the same shell: open once, write twice, one version
    r = sh(f"{{ echo a,b; echo 1,2; }} > {d}/data.csv")
    assert r.returncode == 0
    assert versions(d) == ["v1", "v2", "v3"]
    assert (d / "data.csv").read_text() == "a,b\n1,2\n"


def test_random_writes_behave_like_a_file(mlfs):
    d = make(mlfs)
    with open(d / "data.csv", "r+b") as f:
        f.seek(len(IRIS_HEAD))
        f.write(b"9.9")             # overwrite 5.1 in the first row
        f.seek(0, os.SEEK_END)
        f.write(b"1.0,1.0,1.0,1.0,setosa\n")
        f.seek(0)
        assert f.read(len(IRIS_HEAD)) == IRIS_HEAD.encode()
    want = IRIS.replace("5.1,3.5", "9.9,3.5", 1) + "1.0,1.0,1.0,1.0,setosa\n"
    assert (d / "data.csv").read_text() == want
    assert versions(d) == ["v1", "v2"]
    # ftruncate on a handle, then write
    with open(d / "data.csv", "r+") as f:
        f.truncate(len(IRIS_HEAD) + len(ROWS[0]) + 1)
    assert (d / "data.csv").read_text() == \
        IRIS_HEAD + ROWS[0].replace("5.1", "9.9") + "\n"


def test_schema_inference_and_stats(mlfs):
    csv = ("id,when,city,note,temp,label\n"
           "1,2024-01-01,paris,hello world one,10.5,0\n"
           "2,2024-01-02,rome,another long note,,1\n"
           "3,2024-01-03T10:00:00Z,paris,third free text,12.5,0\n"
           "4,2024-01-04,paris,more words here,NA,1\n"
           "5,2024-01-05,rome,the fifth text,14.0,1\n"
           "6,2024-01-06,paris,sixth distinct text,8.0,0\n")
    d = make(mlfs, "mixed", csv)
    schema = json.loads((d / "schema").read_text())
    cols = {c["name"]: c for c in schema["columns"]}
    assert [c["name"] for c in schema["columns"]] == \
        ["id", "when", "city", "note", "temp", "label"]
    assert cols["id"]["role"] == "id"
    assert cols["when"]["type"] == "time" and cols["when"]["role"] == "time"
    assert cols["city"]["type"] == "categorical"
    assert cols["note"]["type"] == "text"
    assert cols["temp"]["type"] == "numeric"
    assert schema["label"] == "label" and cols["label"]["role"] == "label"
    stats = json.loads((d / "stats").read_text())
    assert stats["rows"] == 6
    st = {c["name"]: c for c in stats["columns"]}
    t = [10.5, 12.5, 14.0, 8.0]
    mean = sum(t) / 4
    std = (sum((x - mean) ** 2 for x in t) / 4) ** 0.5
    assert st["temp"]["count"] == 4 and st["temp"]["missing"] == 2
    assert st["temp"]["mean"] == pytest.approx(mean)
    assert st["temp"]["std"] == pytest.approx(std)
    assert st["temp"]["min"] == 8.0 and st["temp"]["max"] == 14.0
    assert st["city"]["distinct"] == 2
    assert st["city"]["classes"] == {"paris": 4, "rome": 2}
    assert st["label"]["classes"] == {"0": 3, "1": 3}
    assert st["city"]["mean"] is None


def test_rfc4180_quoting(mlfs):
    csv = ('\ufeffname,text,n\r\n'
           '"Smith, J","said ""hi""\r\nthen left",1\r\n'
           'Doe,plain,2\r\n')
    d = make(mlfs, "quotes", csv)
    assert (d / "v1" / "data.csv").read_bytes() == csv.encode()
    st = json.loads((d / "stats").read_text())
    assert st["rows"] == 2
    assert [c["name"] for c in st["columns"]] == ["name", "text", "n"]


def test_schema_override(mlfs):
    d = make(mlfs)
    (d / "schema").write_text(json.dumps({
        "columns": [{"name": "petal_width", "role": "pii"},
                    {"name": "sepal_length", "type": "categorical"}],
        "label": "petal_length"}))
    assert versions(d) == ["v1", "v2"]
    sc = json.loads((d / "schema").read_text())
    cols = {c["name"]: c for c in sc["columns"]}
    assert sc["label"] == "petal_length"
    assert cols["petal_length"]["role"] == "label"
    assert cols["species"]["role"] == "feature"
    assert cols["petal_width"]["role"] == "pii"
    assert cols["sepal_length"]["type"] == "categorical"
    # v1 keeps its schema; v2 shares the data
    assert json.loads((d / "v1" / "schema").read_text())["label"] == "species"
    assert (d / "v2" / "data.csv").read_text() == IRIS
    # overrides carry over to new data versions
    (d / "data.csv").write_text(IRIS + "5.0,3.6,1.4,0.2,setosa\n")
    sc3 = json.loads((d / "v3" / "schema").read_text())
    assert sc3["label"] == "petal_length"
    # the same override again changes nothing
    (d / "schema").write_text(json.dumps({"label": "petal_length"}))
    assert versions(d) == ["v1", "v2", "v3"]


@pytest.mark.parametrize("text,where,msg", [
    ('{"columns": [{"name": "nope", "role": "id"}]}', "1:23",
     'no column "nope"'),
    ('{"columns": [\n  {"name": "species", "type": "numeric"}]}', "2:12",
     "non-numeric"),
    ('{"columns": [{"name": "species", "role": "boss"}]}', "1:34",
     '"role": must be'),
    ('{"label": "ghost"}', "1:2", 'no column "ghost"'),
    ('{"colums": []}', "1:2", "unknown field"),
    ('{"columns": [', "1:13", ""),
])
def test_bad_schema_override(mlfs, text, where, msg):
    d = make(mlfs)
    mlfs.expect("rejected")
    with pytest.raises(OSError) as e:
        (d / "schema").write_text(text)
    assert e.value.errno == errno.EINVAL
    last = mlfs.errors().splitlines()[-1]
    assert f"datasets/iris/schema:{where}:" in last, last
    assert msg in last
    assert versions(d) == ["v1"]


BAD_CSV = [
    ("a,b\n1,2\n3\n", "3:2", "record has 1 field, header has 2"),
    ("a,b\n1,2,3\n", "2:5", "record has 3 fields"),
    ("a,b\n1,\"2\n", "2:3", "unterminated quoted field"),
    ("a,b\n1,2\x00\n", "2:4", "binary data"),
    ("a,b\n1,\xff\n", "2:3", "invalid UTF-8"),
    ("a,b\n", "", "no data rows"),
    ("a,a\n1,2\n", "1:3", "duplicate column name"),
    ("a,\n1,2\n", "1:3", "empty column name"),
]


@pytest.mark.parametrize("content,where,msg", BAD_CSV)
def test_bad_csv_changes_nothing(mlfs, content, where, msg):
    d = make(mlfs)
    mlfs.expect("rejected")
    with pytest.raises(OSError) as e:
        with open(d / "data.csv", "wb") as f:
            f.write(content.encode("latin-1"))
    assert e.value.errno == errno.EINVAL
    last = mlfs.errors().splitlines()[-1]
    assert "datasets/iris/data.csv:" + where in last, last
    assert msg in last
    assert versions(d) == ["v1"]
    assert (d / "data.csv").read_text() == IRIS
    # nothing staged is left behind in the store.  FUSE sends RELEASE
    # after close(2) has returned, so the copy goes a moment later.
    deadline = time.monotonic() + 10
    while os.listdir(mlfs.store / ".tmp") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.listdir(mlfs.store / ".tmp") == []


def test_cp_reports_bad_csv(mlfs, tmp_path):
    d = make(mlfs)
    mlfs.expect("rejected")
    (tmp_path / "bad.csv").write_text("a,b\n1\n")
    r = sh(f"cp {tmp_path}/bad.csv {d}/data.csv")
    assert r.returncode != 0
    assert "Invalid argument" in r.stderr
    assert versions(d) == ["v1"]


def test_empty_truncation_makes_no_version(mlfs):
    d = make(mlfs)
    mlfs.expect("rejected")
    assert sh(f": > {d}/data.csv").returncode == 0
    assert versions(d) == ["v1"]
    assert (d / "data.csv").read_text() == IRIS
    assert "empty file" in mlfs.errors()


@pytest.mark.parametrize("name", [
    ".hidden", "latest", "v3", "a b", "a*b", "x" * 256, "caf\u00e9",
    "semi;colon"])
def test_bad_dataset_names(mlfs, name):
    mlfs.expect("rejected")
    with pytest.raises(OSError) as e:
        (mlfs.mnt / "datasets" / name).mkdir()
    assert e.value.errno in (errno.EINVAL, errno.ENAMETOOLONG)
    assert os.listdir(mlfs.mnt / "datasets") == []


def test_good_names_and_exists(mlfs):
    for n in ("a", "A-b_c.1", "v1x", "x" * 255, "latest2"):
        (mlfs.mnt / "datasets" / n).mkdir()
    with pytest.raises(FileExistsError):
        (mlfs.mnt / "datasets" / "a").mkdir()
    assert len(os.listdir(mlfs.mnt / "datasets")) == 5


def test_size_cap_is_efbig(mlfs_factory):
    m = mlfs_factory(opts=["max_file=64K"])
    d = make(m)
    with pytest.raises(OSError) as e:
        with open(d / "data.csv", "w") as f:
            f.write(IRIS_HEAD + "1,2,3,4,x\n" * 10000)
    assert e.value.errno == errno.EFBIG
    assert versions(d) == ["v1"]


def test_source_imports_a_local_file(mlfs, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(IRIS)
    d = make(mlfs, content=None)
    (d / "source").write_text(str(src) + "\n")
    assert versions(d) == ["v1"]
    assert (d / "data.csv").read_text() == IRIS
    assert (d / "source").read_text() == str(src) + "\n"
    lin = json.loads((d / "v1" / "lineage").read_text())
    assert lin["made_by"] == "source" and lin["detail"] == str(src)
    # relative paths resolve against the writer's directory
    (tmp_path / "in2.csv").write_text(IRIS + "1,1,1,1,setosa\n")
    r = sh(f"cd {tmp_path} && echo in2.csv > {d}/source")
    assert r.returncode == 0, r.stderr
    assert versions(d) == ["v1", "v2"]


@pytest.mark.parametrize("text,msg", [
    ("/nonexistent/file.csv", "No such file"),
    ("/etc", "not a regular file"),
    ("", "empty source"),
    ("s3://no-key", "not s3://bucket/key"),
])
def test_bad_source(mlfs, text, msg):
    d = make(mlfs)
    mlfs.expect("rejected")
    with pytest.raises(OSError):
        (d / "source").write_text(text + "\n")
    assert msg in mlfs.errors().splitlines()[-1]
    assert versions(d) == ["v1"]


def test_source_with_bad_csv(mlfs, tmp_path):
    d = make(mlfs)
    mlfs.expect("rejected")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(OSError) as e:
        (d / "source").write_text(str(tmp_path / "bad.csv"))
    assert e.value.errno == errno.EINVAL
    assert f"{tmp_path}/bad.csv:3:2: record has 1 field" in mlfs.errors()


def test_aliases(mlfs):
    d = make(mlfs)
    (d / "data.csv").write_text(IRIS + "1,1,1,1,setosa\n")
    os.symlink("v1", d / "prod")
    assert os.readlink(d / "prod") == "v1"
    assert (d / "prod" / "data.csv").read_text() == IRIS
    r = sh(f"cd {d} && ln -sfn v2 prod")
    assert r.returncode == 0, r.stderr
    assert os.readlink(d / "prod") == "v2"
    assert "prod" in os.listdir(d)
    # an alias pins its version
    with pytest.raises(OSError) as e:
        os.rmdir(d / "v2")
    assert e.value.errno == errno.EBUSY
    # latest is kept by the filesystem
    with pytest.raises(OSError):
        os.symlink("v1", d / "latest")
    with pytest.raises(OSError) as e:
        os.unlink(d / "latest")
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError):
        os.rename(d / "prod", d / "latest")
    # bad alias targets and names
    mlfs.expect("rejected")
    with pytest.raises(OSError) as e:
        os.symlink("../other/v1", d / "bad")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        os.symlink("v9", d / "bad")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError) as e:
        os.symlink("v1", d / ".bad")
    assert e.value.errno == errno.EINVAL
    os.unlink(d / "prod")
    assert "prod" not in os.listdir(d)
    os.rmdir(d / "v2")
    assert versions(d) == ["v1"]
    assert os.readlink(d / "latest") == "v1"


def test_rmdir_version_and_dataset(mlfs):
    d = make(mlfs)
    (d / "data.csv").write_text(IRIS + "1,1,1,1,setosa\n")
    (d / "data.csv").write_text(IRIS + "2,2,2,2,setosa\n")
    with open(d / "v2" / "data.csv") as reader:
        os.rmdir(d / "v2")
        assert versions(d) == ["v1", "v3"]
        # open readers keep what they opened
        assert reader.read() == IRIS + "1,1,1,1,setosa\n"
    # version names are never reused
    os.rmdir(d / "v3")
    assert os.readlink(d / "latest") == "v1"
    (d / "data.csv").write_text(IRIS + "3,3,3,3,setosa\n")
    assert versions(d) == ["v1", "v4"]
    # files are attributes: unlink is refused, rmdir takes everything
    with pytest.raises(OSError) as e:
        os.unlink(d / "schema")
    assert e.value.errno == errno.EPERM
    os.rmdir(d)
    assert os.listdir(mlfs.mnt / "datasets") == []
    assert not (mlfs.store / "datasets" / "iris").exists()
    # a removed dataset's name can be used again, from v1
    d = make(mlfs)
    assert versions(d) == ["v1"]


def test_concurrent_writers_each_make_a_version(mlfs):
    d = make(mlfs, content=None)
    files = [open(d / "data.csv", "w") for _ in range(4)]
    for i, f in enumerate(files):
        f.write(IRIS + f"{i},{i},{i},{i},setosa\n")
    errs = []

    def close(f):
        try:
            f.close()
        except OSError as e:
            errs.append(e)
    ts = [threading.Thread(target=close, args=(f,)) for f in files]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs
    assert versions(d) == ["v1", "v2", "v3", "v4"]
    contents = {(d / v / "data.csv").read_text() for v in versions(d)}
    assert contents == {IRIS + f"{i},{i},{i},{i},setosa\n" for i in range(4)}


def test_index_rebuild_from_store(mlfs):
    d = make(mlfs)
    (d / "data.csv").write_text(IRIS + "1,1,1,1,setosa\n")
    os.symlink("v1", d / "prod")
    (mlfs.mnt / "datasets" / "empty").mkdir()
    before = {v: (d / v / "data.csv").read_text() for v in versions(d)}
    schema = (d / "v2" / "schema").read_text()
    mlfs.stop()
    shutil.rmtree(mlfs.cache)
    mlfs.start()
    assert sorted(os.listdir(mlfs.mnt / "datasets")) == ["empty", "iris"]
    assert {v: (d / v / "data.csv").read_text() for v in versions(d)} == before
    assert os.readlink(d / "prod") == "v1"
    assert os.readlink(d / "latest") == "v2"
    assert (d / "v2" / "schema").read_text() == schema
    (d / "data.csv").write_text(IRIS + "2,2,2,2,setosa\n")
    assert versions(d) == ["v1", "v2", "v3"]


def test_kill9_during_write_keeps_previous_version(mlfs):
    d = make(mlfs)
    (d / "data.csv").write_text(IRIS + "1,1,1,1,setosa\n")   # v2, closed
    f = open(d / "data.csv", "w")
    f.write(IRIS_HEAD + "9,9,9,9,setosa\n" * 20000)
    f.flush()
    mlfs.kill9()
    try:
        f.close()
    except OSError:
        pass
    mlfs.start()
    assert versions(d) == ["v1", "v2"]
    assert (d / "data.csv").read_text() == IRIS + "1,1,1,1,setosa\n"
    assert (d / "v1" / "data.csv").read_text() == IRIS
    assert os.listdir(mlfs.store / ".tmp") == []
    (d / "data.csv").write_text(IRIS + "2,2,2,2,setosa\n")
    assert versions(d) == ["v1", "v2", "v3"]


def test_kill9_after_close_loses_nothing(mlfs):
    d = make(mlfs, content=None)
    for i in range(5):
        (d / "data.csv").write_text(IRIS + f"{i},{i},{i},{i},setosa\n")
    mlfs.kill9()
    mlfs.start()
    assert versions(d) == ["v1", "v2", "v3", "v4", "v5"]
    for i in range(5):
        assert (d / f"v{i + 1}" / "data.csv").read_text() == \
            IRIS + f"{i},{i},{i},{i},setosa\n"


def test_permissions_are_the_kernels(mlfs_factory):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    d = make(mlfs)
    os.chmod(d, 0o700)
    assert os.stat(d).st_mode & 0o777 == 0o700
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", "cat", str(d / "data.csv")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    os.chmod(d, 0o755)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", "cat", str(d / "data.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == IRIS
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", "bash", "-c",
                        f"echo a,b > {d}/data.csv"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # an unprivileged user makes and owns their own dataset
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", "mkdir",
                        str(mlfs.mnt / "datasets" / "mine")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.stat(mlfs.mnt / "datasets" / "mine").st_uid == 65534


def test_mlfs_stats_counts(mlfs):
    make(mlfs)
    st = (mlfs.mnt / ".mlfs" / "stats").read_text()
    assert "versions_created 1" in st
