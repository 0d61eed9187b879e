"""features/: feature sets as a kind of versioned object (issue 13, points
1 and 2): mkdir, a spec checked as written, versions, aliases, owner and
mode, rebuild and the S3 store."""
import errno
import json
import os
import subprocess

import pytest

from conftest import NOBODY, ROOT, as_user
from test_s3 import fresh, s3mount

IRIS = (ROOT / "examples" / "data" / "iris.csv").read_text()

TXNS = ("customer_id,ts,amount,country\n"
        "c1,2024-01-01T00:00:00Z,10.5,fr\n"
        "c2,2024-01-01T01:00:00Z,3,de\n"
        "c1,2024-01-02T00:00:00Z,7,fr\n")

SPEC = {"entity": "customer_id", "timestamp": "ts",
        "source": "transactions", "ttl": "30d",
        "features": [
            {"name": "spend_7d", "column": "amount", "agg": "sum",
             "window": "7d"},
            {"name": "txns_1h", "agg": "count", "window": "1h"},
            {"name": "country", "column": "country"},
            {"name": "amount_last", "column": "amount", "min": 0,
             "max": 100, "on_violation": "clip"}]}


def sh(cmd):
    return subprocess.run(["bash", "-c", cmd], capture_output=True,
                          text=True, timeout=60)


def versions(d):
    return sorted(p for p in os.listdir(d) if p[1:].isdigit())


def make_set(mlfs, name="cust"):
    t = mlfs.mnt / "datasets" / "transactions"
    t.mkdir()
    (t / "data.csv").write_text(TXNS)
    d = mlfs.mnt / "features" / name
    d.mkdir()
    return d


def test_a_feature_set_is_a_kind_with_versions(mlfs):
    assert "features" in os.listdir(mlfs.mnt)
    d = make_set(mlfs)
    assert (d / "spec").read_text() == ""
    assert versions(d) == []
    (d / "spec").write_text(json.dumps(SPEC))
    assert versions(d) == ["v1"]
    assert os.readlink(d / "latest") == "v1"
    kept = json.loads((d / "v1" / "spec").read_text())
    # defaults filled in: agg, on_violation, entity as a list, types
    assert kept["entity"] == ["customer_id"]
    f = {x["name"]: x for x in kept["features"]}
    assert f["country"]["agg"] == "last"
    assert f["country"]["type"] == "categorical"   # from the dataset
    assert f["amount_last"]["type"] == "numeric"
    assert f["spend_7d"]["on_violation"] == "null"
    assert json.loads((d / "spec").read_text()) == kept
    # the same spec again: no new version; a new one: v2
    (d / "spec").write_text(json.dumps(SPEC, indent=4))
    assert versions(d) == ["v1"]
    spec2 = dict(SPEC, ttl="7d")
    (d / "spec").write_text(json.dumps(spec2))
    assert versions(d) == ["v1", "v2"]
    assert json.loads((d / "v1" / "spec").read_text())["ttl"] == "30d"
    assert json.loads((d / "v2" / "spec").read_text())["ttl"] == "7d"
    # versions are immutable; aliases as in datasets/
    with pytest.raises(OSError) as e:
        (d / "v1" / "spec").write_text("{}")
    assert e.value.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    os.symlink("v1", d / "prod")
    assert os.readlink(d / "prod") == "v1"
    with pytest.raises(OSError) as e:
        os.rmdir(d / "v1")
    assert e.value.errno == errno.EBUSY
    os.unlink(d / "prod")
    os.rmdir(d / "v1")
    assert versions(d) == ["v2"]
    # the index survives a crash: rebuilt from the store
    mlfs.kill9()
    mlfs.start()
    assert versions(d) == ["v2"]
    assert json.loads((d / "spec").read_text())["ttl"] == "7d"
    os.rmdir(d)
    assert "cust" not in os.listdir(mlfs.mnt / "features")


BAD = [
    # (spec text, errno, message part)
    ('{"entity": "customer_id", "timestamp": "ts"}', "features",
     '"features": missing'),
    ('{"timestamp": "ts", "features": [{"name": "a", "agg": "count"}]}',
     "entity", '"entity": missing'),
    ('{"entity": "e", "timestamp": "ts", "colour": 1, "features": []}',
     "colour", '"colour": unknown field'),
    ('{"entity": "e", "timestamp": "ts",\n "features": [{"name": "a",\n'
     '  "agg": "median", "column": "x"}]}', "a", '"agg": must be last'),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "a", '
     '"column": "x", "window": "7 days"}]}', "a", '"window": must be a '
     'duration'),
    ('{"entity": "e", "timestamp": "ts", "ttl": "-1d", "features": '
     '[{"name": "a", "agg": "count"}]}', "ttl", '"ttl": must be a duration'),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "a", '
     '"agg": "sum"}]}', "a", '"column": missing'),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "a", '
     '"agg": "count"}, {"name": "a", "agg": "count"}]}', "a",
     '"a": named twice'),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "a", '
     '"column": "x", "min": 5, "max": 1}]}', "a", '"min" is above "max"'),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "a", '
     '"column": "x", "on_violation": "drop"}]}', "a",
     '"on_violation": must be null, clip or reject'),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "e", '
     '"agg": "count"}]}', "e", "the name of an output column"),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "a", '
     '"column": "c", "type": "categorical", "agg": "sum"}]}', "a",
     "only last keeps a category"),
    ('{"entity": ["e", "e"], "timestamp": "ts", "features": [{"name": '
     '"a", "agg": "count"}]}', "entity", '"e" named twice'),
    ('{"entity": "e", "timestamp": "ts", "source": "../x", "features": '
     '[{"name": "a", "agg": "count"}]}', "source", "must name a dataset"),
    ('{"entity": "e", "timestamp": "ts", "source": "nosuch", "features": '
     '[{"name": "a", "agg": "count"}]}', "source", 'no dataset "nosuch"'),
    ('{"entity": "nope", "timestamp": "ts", "source": "transactions", '
     '"features": [{"name": "a", "agg": "count"}]}', "entity",
     'no column "nope" in dataset transactions'),
    ('{"entity": "customer_id", "timestamp": "ts", "source": '
     '"transactions", "features": [{"name": "a", "column": "country", '
     '"agg": "mean"}]}', "a", '"country" is not numeric'),
    ('{"entity": "e", "timestamp": "ts", "features": [{"name": "a", '
     '"agg": "count"}]', "", "incomplete JSON"),
    ('[1, 2]', "", "a spec is a JSON object"),
]


@pytest.mark.parametrize("text,field,msg", BAD)
def test_a_bad_spec_fails_the_shells_echo_and_changes_nothing(mlfs, text,
                                                              field, msg):
    d = make_set(mlfs)
    (d / "spec").write_text(json.dumps(SPEC))
    mlfs.expect("rejected")
    (mlfs.mnt.parent / "spec.json").write_text(text)
    r = sh(f"cat {mlfs.mnt.parent}/spec.json > {d}/spec")
    assert r.returncode != 0, r.stderr
    last = mlfs.errors().splitlines()[-1]
    assert msg in last, last
    # the line and column point at the field (1:1 when it is missing)
    if field and f'"{field}"' not in text:
        assert "features/cust/spec:1:1:" in last, last
    elif field:
        lines = text.splitlines()
        line = next(i for i, l in enumerate(lines, 1)
                    if f'"{field}"' in l)
        col = lines[line - 1].index(f'"{field}"') + 1
        assert f"features/cust/spec:{line}:{col}:" in last, last
    assert versions(d) == ["v1"]


def test_a_spec_written_in_pieces_is_judged_when_whole(mlfs):
    d = make_set(mlfs)
    text = json.dumps(SPEC).encode()
    with open(d / "spec", "wb", buffering=0) as f:
        for i in range(0, len(text), 7):
            f.write(text[i:i + 7])
    assert versions(d) == ["v1"]


def test_another_users_feature_set_is_theirs(mlfs_factory):
    m = mlfs_factory(opts=["allow_other"], public=True)
    d = make_set(m)
    (d / "spec").write_text(json.dumps(SPEC))
    r = as_user(["bash", "-c", f"echo '{{}}' > {d}/spec"])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_user(["rmdir", str(d / "v1")])
    assert r.returncode != 0
    r = as_user(["mkdir", str(m.mnt / "features" / "theirs")])
    assert r.returncode == 0, r.stderr
    st = os.stat(m.mnt / "features" / "theirs")
    assert st.st_uid == NOBODY
    assert versions(d) == ["v1"]


def test_feature_sets_survive_the_s3_store_and_the_catalog(mlfs_factory,
                                                         s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = make_set(w)
    (d / "spec").write_text(json.dumps(SPEC))
    (d / "spec").write_text(json.dumps(dict(SPEC, ttl="1d")))
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.stop()
    r = fresh(mlfs_factory, s3server, w.prefix, "r")
    d = r.mnt / "features" / "cust"
    assert versions(d) == ["v1", "v2"]
    assert json.loads((d / "spec").read_text())["ttl"] == "1d"
