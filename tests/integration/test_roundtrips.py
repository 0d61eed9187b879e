"""The FUSE requests a read costs, counted by the daemon (.mlfs/stats):
a read-only handle sends no FLUSH at close (FOPEN_NOFLUSH), a write
handle still does (its errors reach close), and a second read of an
online key sends no GETATTR (its attributes never change), while its
value is still the one as of the open.  A predict handle opened to read
and write reads its own answers and sends no FLUSH either."""
import json
import os
import time

from test_features import sh
from test_train import iris, train


def counters(mlfs):
    text = (mlfs.mnt / ".mlfs" / "stats").read_text()
    return {k: int(v) for k, v in
            (line.split() for line in text.splitlines())}


def test_a_read_only_close_sends_no_flush(mlfs):
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text("a,b\n1,2\n")
    before = counters(mlfs)
    for _ in range(10):
        assert sh(f"cat {d}/data.csv {d}/latest/data.csv {d}/schema"
                  ).returncode == 0
    after = counters(mlfs)
    assert after["opens"] - before["opens"] >= 30
    # reading .mlfs/stats is itself a read-only open: no flush either
    assert after["flushes"] == before["flushes"]
    # a write handle is flushed: its errors are the close's
    (d / "data.csv").write_text("a,b\n1,2\n3,4\n")
    assert counters(mlfs)["flushes"] > after["flushes"]
    r = sh(f"printf 'a,b\\n1,2,3\\n' >> {d}/data.csv")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert sh(f"cat {d}/data.csv").stdout == "a,b\n1,2\n3,4\n"


def test_an_online_key_read_again_sends_no_getattr(mlfs):
    d = mlfs.mnt / "features" / "cust"
    d.mkdir()
    (d / "spec").write_text(json.dumps(
        {"entity": "k", "timestamp": "ts",
         "features": [{"name": "n", "agg": "count"},
                      {"name": "x_sum", "column": "x", "agg": "sum"}]}))
    now = int(time.time())
    (d / "events").write_text(f"k,ts,x\nc1,{now - 10},2\n")
    assert (d / "online" / "c1").read_text().splitlines()[1].split(",")[2:] \
        == ["1", "2"]
    before = counters(mlfs)
    for _ in range(10):
        # open, read, close: no fstat, which asks for the atime a read
        # made stale (the kernel's fuse_invalidate_atime), as cat does
        fd = os.open(d / "online" / "c1", os.O_RDONLY)
        text = os.read(fd, 4096).decode()
        os.close(fd)
        assert text.splitlines()[1].split(",")[2:] == ["1", "2"]
    after = counters(mlfs)
    assert after["opens"] - before["opens"] >= 10
    assert after["getattrs"] - before["getattrs"] < 5
    assert after["flushes"] == before["flushes"]
    # the cached attributes do not cache the value: an event is seen
    with open(d / "events", "a") as f:
        f.write(f"k,ts,x\nc1,{now - 5},3\n")
    assert (d / "online" / "c1").read_text().splitlines()[1].split(",")[2:] \
        == ["2", "5"]
    # a key not in the store is still no file
    r = sh(f"cat {d}/online/c2")
    assert r.returncode != 0 and "No such file" in r.stderr


def test_a_read_write_predict_handle_sends_no_flush(mlfs):
    iris(mlfs)
    assert train(mlfs, "a", {"dataset": "iris", "algorithm": "logistic",
                             "model": "a"}) == "succeeded\n"
    p = mlfs.mnt / "models" / "a" / "predict"
    before = counters(mlfs)
    for _ in range(5):
        fd = os.open(p, os.O_RDWR)
        os.write(fd, b"5.1,3.5,1.4,0.2")   # no newline: scored at read
        out = os.read(fd, 4096).decode()
        os.close(fd)
        assert out.startswith("setosa,") and out.endswith("\n")
    after = counters(mlfs)
    assert after["opens"] - before["opens"] >= 5
    assert after["flushes"] == before["flushes"]
    # a write-only handle is flushed, and leaves its answers to the
    # session's next reader, as before
    r = sh(f"echo 6.7,3.0,5.2,2.3 > {p}; cat {p}")
    assert r.returncode == 0 and r.stdout.startswith("virginica,"), r
    assert counters(mlfs)["flushes"] > after["flushes"]
    # a read-write handle leaves nothing behind for the session: its
    # next reader still gets the last write-only handle's answers
    r = sh(f"echo 6.7,3.0,5.2,2.3 > {p}; exec 3<>{p}; "
           f"echo 5.1,3.5,1.4,0.2 >&3; exec 3>&-; cat {p}")
    assert r.returncode == 0 and r.stdout.startswith("virginica,"), r
    assert len(r.stdout.splitlines()) == 1
