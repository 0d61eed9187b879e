"""mlfs on an S3 bucket (s3rver behind a SigV4-verifying gateway), with the
block cache in front: datasets, training and predict, what lands in the
bucket, a second read-only mount, bad credentials, and the cache
controls."""
import errno
import hashlib
import json
import re
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import BAD_LINE, MLFS, ROOT, is_mounted, wait_job

IRIS = (ROOT / "examples" / "data" / "iris.csv").read_text()


def s3mount(factory, s3, sub="m", prefix=None, opts=(), endpoint=None):
    prefix = prefix or "t-" + uuid.uuid4().hex[:8]
    url = f"s3://{s3['MLFS_S3_BUCKET']}/{prefix}"
    o = [f"endpoint={endpoint or s3['MLFS_S3_ENDPOINT']}", "path_style",
         *opts]
    m = factory(opts=o, sub=sub, url=url, env=s3)
    m.prefix = prefix
    return m


def aws(s3, *args):
    env = dict(os.environ, **s3)
    return subprocess.run(["/usr/bin/aws", "--endpoint-url",
                           s3["MLFS_S3_DIRECT_ENDPOINT"], "s3", *args],
                          capture_output=True, text=True, env=env,
                          timeout=120)


def sh(cmd):
    return subprocess.run(["bash", "-c", cmd], capture_output=True,
                          text=True, timeout=120)


def xxh128(data):
    """The xxh3-128 of data as mlfs names blobs, computed by xxhsum (the
    xxhash package), not by mlfs."""
    r = subprocess.run(["xxhsum", "-H2", "-"], input=data,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0].decode()


def blob_key(data):
    h = xxh128(data)
    return f"blobs/{h[:2]}/{h}"


def bucket_blobs(s3, prefix):
    """{key under prefix: bytes} of every object below prefix/blobs/,
    fetched with aws s3 (one sync)."""
    with tempfile.TemporaryDirectory() as d:
        r = aws(s3, "sync", "--no-progress",
                f"s3://{s3['MLFS_S3_BUCKET']}/{prefix}/blobs/", d)
        assert r.returncode == 0, r.stderr
        return {"blobs/" + str(p.relative_to(d)): p.read_bytes()
                for p in Path(d).rglob("*") if p.is_file()}


def assert_blobs(s3, prefix, *contents, extra=None):
    """The bucket's blobs are exactly contents, each under the key its
    xxh3-128 names and with its bytes (and extra, {key: bytes}, as they
    are)."""
    want = {blob_key(c): c for c in contents}
    want.update(extra or {})
    got = bucket_blobs(s3, prefix)
    assert sorted(got) == sorted(want)
    for k, c in want.items():
        assert got[k] == c, f"{k}: {len(got[k])} bytes, want {len(c)}"


def test_datasets_train_predict_on_s3(mlfs_factory, s3server):
    m = s3mount(mlfs_factory, s3server)
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    assert (d / "v1" / "data.csv").read_text() == IRIS
    # fsync waits for the export; then the bucket has it
    fd = os.open(d / "v1" / "data.csv", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    ls = aws(s3server, "ls", "--recursive",
             f"s3://{s3server['MLFS_S3_BUCKET']}/{m.prefix}/")
    assert ls.returncode == 0, ls.stderr
    assert f"{m.prefix}/datasets/iris/v1.json" in ls.stdout
    assert f"{m.prefix}/mlfs-format" in ls.stdout
    man = json.loads(aws(s3server, "cp", f"s3://{s3server['MLFS_S3_BUCKET']}/"
                         f"{m.prefix}/datasets/iris/v1.json", "-").stdout)
    assert man["blob"] == blob_key(IRIS.encode())
    blob = aws(s3server, "cp", f"s3://{s3server['MLFS_S3_BUCKET']}/"
               f"{m.prefix}/{man['blob']}", "-")
    assert blob.stdout == IRIS
    assert os.getxattr(d / "v1" / "data.csv", "user.mlfs.state") in (
        b"synced", b"cached")
    (m.mnt / "train" / "j.json").write_text(
        '{"dataset": "iris", "algorithm": "logistic", "model": "iris"}')
    assert wait_job(m.mnt, "j") == "succeeded\n"
    r = sh(f"echo 5.1,3.5,1.4,0.2 > {m.mnt}/models/iris/predict; "
           f"cat {m.mnt}/models/iris/predict")
    assert r.stdout.startswith("setosa,")
    stats = (m.mnt / ".mlfs" / "cache").read_text()
    assert "exports_done" in stats and "hits" in stats
    # a fresh mount with an empty cache rebuilds everything from the bucket
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    m.stop()
    shutil.rmtree(m.cache)
    m.start()
    assert (d / "v1" / "data.csv").read_text() == IRIS
    assert (m.mnt / "jobs" / "j" / "status").read_text() == "succeeded\n"
    r = sh(f"echo 6.3,3.3,6.0,2.5 > {m.mnt}/models/iris/predict; "
           f"cat {m.mnt}/models/iris/predict")
    assert r.stdout.startswith("virginica,")


def test_second_mount_is_read_only_and_sees_new_versions(mlfs_factory,
                                                         s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = w.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    r = s3mount(mlfs_factory, s3server, sub="r", prefix=w.prefix,
                opts=["import_ttl=1"])
    rd = r.mnt / "datasets" / "iris"
    assert (rd / "v1" / "data.csv").read_text() == IRIS
    with pytest.raises(OSError) as e:
        (r.mnt / "datasets" / "new").mkdir()
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError) as e:
        (rd / "data.csv").write_text(IRIS)
    assert e.value.errno == errno.EROFS
    (d / "data.csv").write_text(IRIS + "5.0,3.6,1.4,0.2,setosa\n")
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    deadline = time.monotonic() + 15
    while not (rd / "v2").exists():
        assert time.monotonic() < deadline, "v2 never appeared"
        time.sleep(0.5)
    assert (rd / "v2" / "data.csv").read_text().endswith("setosa\n")


def test_bad_credentials_and_endpoint_are_one_line_errors(tmp_path,
                                                          s3server):
    (tmp_path / "mnt").mkdir()
    env = dict(os.environ, **s3server)
    env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
    url = f"s3://{s3server['MLFS_S3_BUCKET']}/x"
    r = subprocess.run([str(MLFS), "-o", f"cache={tmp_path}/c,endpoint="
                        f"{s3server['MLFS_S3_ENDPOINT']},path_style", url,
                        str(tmp_path / "mnt")], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "access denied" in r.stderr
    assert "wrong-secret" not in r.stderr
    env = dict(os.environ, **s3server)
    r = subprocess.run([str(MLFS), "-o", f"cache={tmp_path}/c2,endpoint="
                        "http://127.0.0.1:9,path_style", url,
                        str(tmp_path / "mnt")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode != 0 and r.stderr.count("\n") == 1
    assert "S3RVER" not in r.stderr


def test_cache_controls_and_xattrs(mlfs_factory, s3server):
    m = s3mount(mlfs_factory, s3server)
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    f = d / "v1" / "data.csv"
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    assert f.read_text() == IRIS
    (m.mnt / ".mlfs" / "cache").write_text(f"release datasets/iris/v1/data.csv\n")
    assert os.getxattr(f, "user.mlfs.state") == b"released"
    assert os.getxattr(f, "user.mlfs.cached_bytes") == b"0"
    (m.mnt / ".mlfs" / "cache").write_text(f"prefetch {f}\n")
    deadline = time.monotonic() + 10
    while os.getxattr(f, "user.mlfs.state") != b"synced":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert int(os.getxattr(f, "user.mlfs.cached_bytes")) == len(IRIS)
    assert "user.mlfs.state" in os.listxattr(f)
    with pytest.raises(OSError) as e:
        os.getxattr(f, "user.other")
    assert e.value.errno == errno.ENODATA
    m.expect("rejected")
    with pytest.raises(OSError) as e:
        (m.mnt / ".mlfs" / "cache").write_text("explode\n")
    assert e.value.errno == errno.EINVAL
    assert "unknown command" in m.errors()


# The fault proxy's rules are one set for the whole server: tests that set
# them run one at a time, on one xdist worker (run.sh: --dist loadgroup).
FAULT_PROXY = pytest.mark.xdist_group("fault_proxy")


def fault(s3, rules=None):
    """Set (or clear, with None) the fault proxy's rules."""
    import urllib.request
    url = s3["MLFS_S3_FAULT_CONTROL"]
    if rules is None:
        req = urllib.request.Request(url, method="DELETE")
    else:
        req = urllib.request.Request(
            url, data=json.dumps({"rules": rules}).encode(), method="POST",
            headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def fault_rules(s3):
    """The fault proxy's rules as they stand, with their hit counts."""
    import urllib.request
    with urllib.request.urlopen(s3["MLFS_S3_FAULT_CONTROL"],
                                timeout=10) as r:
        return json.loads(r.read())["rules"]


def fault_mount(factory, s3, tag, opts=()):
    """A mount of a new prefix through the fault proxy, its rules cleared;
    retries are logged, so its "s3: " lines are expected."""
    url = f"s3://{s3['MLFS_S3_BUCKET']}/{tag}-{uuid.uuid4().hex[:8]}"
    fault(s3)
    m = factory(opts=[f"endpoint={s3['MLFS_S3_FAULT_ENDPOINT']}",
                      "path_style", *opts], url=url, env=s3)
    m.expect(r"s3: ")
    m.prefix = url.split("/", 3)[3]
    return m


@FAULT_PROXY
def test_failing_s3_cached_reads_work_uncached_fail_exports_retry(
        mlfs_factory, s3server):
    try:
        m = fault_mount(mlfs_factory, s3server, "f")
        d = m.mnt / "datasets"
        (d / "a").mkdir()
        (d / "a" / "data.csv").write_text(IRIS)
        (d / "b").mkdir()
        (d / "b" / "data.csv").write_text(IRIS + "1,1,1,1,setosa\n")
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        assert (d / "a" / "v1" / "data.csv").read_text() == IRIS  # cached
        (m.mnt / ".mlfs" / "cache").write_text(
            "release datasets/b/v1/data.csv\n")
        # the server fails every request from now on
        fault(s3server, [{"match": "", "times": -1, "action": "status",
                          "status": 500, "code": "InternalError"}])
        t0 = time.monotonic()
        assert (d / "a" / "v1" / "data.csv").read_text() == IRIS
        with pytest.raises(OSError) as e:
            (d / "b" / "v1" / "data.csv").read_text()
        assert e.value.errno == errno.EIO
        assert time.monotonic() - t0 < 60, "no hang: bounded retries"
        # a new version while the bucket is down: close succeeds (the
        # outbox has it), the export is retried until the bucket is back
        (d / "a" / "data.csv").write_text(IRIS + "2,2,2,2,setosa\n")
        assert (d / "a" / "v2" / "data.csv").read_text().endswith(
            "2,2,2,2,setosa\n")
        st = (m.mnt / ".mlfs" / "cache").read_text()
        assert "exports_queued 0" not in st
        fault(s3server)
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        ls = aws(s3server, "ls", "--recursive",
                 f"s3://{s3server['MLFS_S3_BUCKET']}/{m.prefix}/datasets/a/")
        assert "v2.json" in ls.stdout
    finally:
        fault(s3server)


@FAULT_PROXY
def test_a_crash_before_export_resumes_at_the_next_mount(mlfs_factory,
                                                        s3server):
    try:
        m = fault_mount(mlfs_factory, s3server, "c")
        (m.mnt / "datasets" / "x").mkdir()
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        fault(s3server, [{"match": "blobs/", "times": -1, "action": "status",
                          "status": 503, "code": "SlowDown"}])
        (m.mnt / "datasets" / "x" / "data.csv").write_text(IRIS)
        m.kill9()
        fault(s3server)
        m.start()
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        assert (m.mnt / "datasets" / "x" / "v1" / "data.csv").read_text() \
            == IRIS
        assert_blobs(s3server, m.prefix, IRIS.encode())
    finally:
        fault(s3server)


def test_foreign_objects_in_the_bucket_never_crash(mlfs_factory, s3server,
                                                   tmp_path):
    prefix = "g-" + uuid.uuid4().hex[:8]
    b = s3server["MLFS_S3_BUCKET"]
    junk = tmp_path / "junk"
    junk.write_text("not json {")
    for key in ["datasets/evil/dataset.json", "datasets/../x.json",
                "datasets/a b/v1.json", "models/m/v1.json",
                # long keys: s3rver keeps objects in files, so at most
                # a file name's 255 bytes per component
                "datasets/" + "y" * 240 + "/dataset.json",
                "datasets/ok/v9.json", "jobs/bad.json",
                "blobs/zz/not-a-hash"]:
        aws(s3server, "cp", str(junk), f"s3://{b}/{prefix}/{key}")
    m = s3mount(mlfs_factory, s3server, prefix=prefix)
    m.expect(r"rebuild: .*not a record")
    assert os.listdir(m.mnt / "datasets") == []
    (m.mnt / "datasets" / "fine").mkdir()
    (m.mnt / "datasets" / "fine" / "data.csv").write_text(IRIS)
    assert (m.mnt / "datasets" / "fine" / "v1" / "data.csv").read_text() \
        == IRIS


def test_s3_source_is_imported_lazily_and_pinned(mlfs_factory, s3server,
                                                 tmp_path):
    b = s3server["MLFS_S3_BUCKET"]
    key = f"incoming/{uuid.uuid4().hex[:8]}/iris.csv"
    url = f"s3://{b}/{key}"

    def put(text):
        (tmp_path / "iris.csv").write_text(text)
        assert aws(s3server, "cp", str(tmp_path / "iris.csv"),
                   url).returncode == 0

    def wait_for(path):
        deadline = time.monotonic() + 20
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.3)

    put(IRIS)
    # a local store mount can import from S3 too (the mount's endpoint)
    m = mlfs_factory(opts=[f"endpoint={s3server['MLFS_S3_ENDPOINT']}",
                           "path_style", "import_ttl=1"], env=s3server)
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "source").write_text(url + "\n")
    # lazy: the version exists, pinned to the ETag, nothing read yet
    f = d / "v1" / "data.csv"
    assert f.stat().st_size == len(IRIS)
    assert os.getxattr(f, "user.mlfs.state") == b"released"
    lin = json.loads((d / "v1" / "lineage").read_text())
    assert lin["made_by"] == "source" and lin["detail"] == url
    assert lin["source_etag"] and lin["hash"] is None
    assert (d / "source").read_text() == url + "\n"
    # the same object again: no new version
    (d / "source").write_text(url + "\n")
    assert not (d / "v2").exists()
    # the first read imports it: hash, schema and stats follow (a read
    # of stats waits for them)
    assert f.read_text() == IRIS
    assert json.loads((d / "v1" / "stats").read_text())["rows"] == 150
    lin = json.loads((d / "v1" / "lineage").read_text())
    assert lin["hash"] and lin["size"] == len(IRIS)
    assert json.loads((d / "v1" / "schema").read_text())["label"] == "species"
    assert os.getxattr(f, "user.mlfs.state") == b"synced"
    # the object changes: a new version, and v1 keeps its bytes
    put(IRIS + "4.4,2.9,1.4,0.2,setosa\n")
    wait_for(d / "v2")
    assert (d / "v2" / "data.csv").read_text().endswith("setosa\n")
    assert (d / "v1" / "data.csv").read_text() == IRIS
    # a version never read before its object changed is stale, never
    # served with the new bytes
    e2 = m.mnt / "datasets" / "early"
    e2.mkdir()
    (e2 / "source").write_text(url + "\n")
    put(IRIS + "4.5,2.3,1.3,0.3,setosa\n")
    wait_for(e2 / "v2")
    m.expect("changed since")
    with pytest.raises(OSError) as e:
        (e2 / "v1" / "data.csv").read_text()
    assert e.value.errno == errno.ESTALE
    assert "changed since this version was pinned" in m.errors()
    assert (e2 / "v2" / "data.csv").read_text().endswith("0.3,setosa\n")
    # prefetch (FSx's hsm_restore) imports a version not read yet
    pf = m.mnt / "datasets" / "pf"
    pf.mkdir()
    (pf / "source").write_text(url + "\n")
    assert json.loads((pf / "v1" / "lineage").read_text())["hash"] is None
    (m.mnt / ".mlfs" / "cache").write_text("prefetch datasets/pf/v1/data.csv\n")
    assert json.loads((pf / "v1" / "lineage").read_text())["hash"]
    # training on a version not read yet imports it first
    t = m.mnt / "datasets" / "tr"
    t.mkdir()
    (t / "source").write_text(url + "\n")
    (m.mnt / "train" / "lz.json").write_text(
        '{"dataset": "tr", "algorithm": "logistic", "model": "lz"}')
    assert wait_job(m.mnt, "lz") == "succeeded\n"
    assert json.loads((t / "v1" / "stats").read_text())["rows"] == 151
    # a pinned object deleted before the first read: stale, not empty
    gone = f"s3://{b}/incoming/{uuid.uuid4().hex[:8]}/gone.csv"
    assert aws(s3server, "cp", str(tmp_path / "iris.csv"), gone
               ).returncode == 0
    gd = m.mnt / "datasets" / "gone"
    gd.mkdir()
    (gd / "source").write_text(gone + "\n")
    assert aws(s3server, "rm", gone).returncode == 0
    with pytest.raises(OSError) as e:
        (gd / "data.csv").read_text()
    assert e.value.errno == errno.ESTALE
    # a bad CSV behind a source: the first read gets its bytes, the scan
    # behind it fails naming the line, and so does every read after
    bad = f"s3://{b}/incoming/{uuid.uuid4().hex[:8]}/bad.csv"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3\n")
    assert aws(s3server, "cp", str(tmp_path / "bad.csv"), bad).returncode == 0
    bd = m.mnt / "datasets" / "bad"
    bd.mkdir()
    (bd / "source").write_text(bad + "\n")
    m.expect("bad.csv:3")
    assert (bd / "v1" / "data.csv").read_text() == "a,b\n1,2\n3\n"
    with pytest.raises(OSError) as e:
        (bd / "v1" / "schema").read_text()
    assert e.value.errno == errno.EINVAL
    assert f"{bad}:3:" in m.errors()
    with pytest.raises(OSError) as e:
        (bd / "v1" / "data.csv").read_text()
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:            # remembered, not refetched
        (bd / "v1" / "stats").read_text()
    assert e.value.errno == errno.EINVAL
    m.expect("rejected")
    with pytest.raises(OSError) as e:
        (d / "source").write_text(f"s3://{b}/no/such/key.csv\n")
    assert e.value.errno == errno.ENOENT
    assert "no such object" in m.errors()


@FAULT_PROXY
def test_a_lazy_sources_bytes_are_read_as_they_land(mlfs_factory, s3server,
                                                    tmp_path):
    """The first read of a lazy source does not wait for the import: its
    bytes are served as they arrive, the end waits for the copy's last
    check (held back here by a slow HEAD of the object after the copy),
    and the hash, schema and stats follow; a read of stats waits for
    them."""
    b = s3server["MLFS_S3_BUCKET"]
    key = f"incoming/{uuid.uuid4().hex[:8]}/big.csv"
    rows = "".join(f"{i},{i % 7}.5,x{i % 13}\n" for i in range(600_000))
    text = "id,v,c\n" + rows                    # about 9 MiB
    (tmp_path / "big.csv").write_text(text)
    assert aws(s3server, "cp", str(tmp_path / "big.csv"),
               f"s3://{b}/{key}").returncode == 0
    held = 3.0      # under the client's stall timeout: no retry
    try:
        m = fault_mount(mlfs_factory, s3server, "lz")
        d = m.mnt / "datasets" / "big"
        d.mkdir()
        (d / "source").write_text(f"s3://{b}/{key}\n")
        # the import's first HEAD answers; the one after the copy waits
        fault(s3server, [
            {"match": key, "method": "HEAD", "times": 1, "action": "delay",
             "delay_ms": 0},
            {"match": key, "method": "HEAD", "times": 1, "action": "delay",
             "delay_ms": int(held * 1000)}])
        size = len(text)
        t0 = time.monotonic()
        fd = os.open(d / "data.csv", os.O_RDONLY)   # direct_io: no readahead
        try:
            got = b""
            while len(got) < size - 1:
                chunk = os.pread(fd, size - 1 - len(got), len(got))
                assert chunk
                got += chunk
            early = time.monotonic() - t0
            # every byte but the last, while the copy is still checked
            assert json.loads((d / "v1" / "lineage").read_text())["hash"] \
                is None
            assert early < held, early
            assert got == text.encode()[:-1]
            # the last byte waits for that check
            assert os.pread(fd, 4096, size - 1) == b"\n"
            assert time.monotonic() - t0 >= held * 0.9
            assert os.pread(fd, 4096, size) == b""
        finally:
            os.close(fd)
        # stats wait for the scan that follows; then all is filled in
        assert json.loads((d / "v1" / "stats").read_text())["rows"] \
            == 600_000
        lin = json.loads((d / "v1" / "lineage").read_text())
        assert lin["hash"] and lin["size"] == size
        assert (d / "v1" / "data.csv").read_bytes() == text.encode()
    finally:
        fault(s3server)


@FAULT_PROXY
def test_a_lazy_read_during_an_import_for_stats_gets_the_bytes(
        mlfs_factory, s3server, tmp_path):
    """A reader that opens a lazy version while a read of stats imports
    it waits for that import and reads the blob (it once got a feed with
    no file behind it, EBADF)."""
    b = s3server["MLFS_S3_BUCKET"]
    key = f"incoming/{uuid.uuid4().hex[:8]}/s.csv"
    text = "a,b\n" + "".join(f"{i},{i % 5}\n" for i in range(200_000))
    (tmp_path / "s.csv").write_text(text)
    assert aws(s3server, "cp", str(tmp_path / "s.csv"), f"s3://{b}/{key}"
               ).returncode == 0
    try:
        m = fault_mount(mlfs_factory, s3server, "lzs")
        d = m.mnt / "datasets" / "s"
        d.mkdir()
        (d / "source").write_text(f"s3://{b}/{key}\n")
        # looked up first: the opens below go straight to OPEN
        for f in (d / "v1" / "data.csv", d / "data.csv"):
            assert f.stat().st_size == len(text)
        fault(s3server, [{"match": key, "method": "GET", "times": -1,
                          "action": "delay", "delay_ms": 1500}])
        with ThreadPoolExecutor(1) as ex:
            stats = ex.submit((d / "v1" / "stats").read_text)
            time.sleep(0.5)
            for f in (d / "v1" / "data.csv", d / "data.csv"):
                assert f.read_text() == text
            assert json.loads(stats.result())["rows"] == 200_000
    finally:
        fault(s3server)


@FAULT_PROXY
def test_a_lazy_source_found_bad_after_its_read_fails_from_then_on(
        mlfs_factory, s3server, tmp_path):
    """A first read gets the object's bytes before the scan that follows
    the copy finds the CSV bad; from then on stats, and every open of the
    version, fail with EINVAL naming the line.  An unmount in the middle
    of an import stops it, and the next mount imports the version from
    the start."""
    b = s3server["MLFS_S3_BUCKET"]
    key = f"incoming/{uuid.uuid4().hex[:8]}/bad.csv"
    text = "a,b\n" + "1,2\n" * 3_000_000 + "3\n"   # 12 MiB, line 3000002
    (tmp_path / "bad.csv").write_text(text)
    url = f"s3://{b}/{key}"
    assert aws(s3server, "cp", str(tmp_path / "bad.csv"), url
               ).returncode == 0
    try:
        m = fault_mount(mlfs_factory, s3server, "lzbad")
        m.expect("bad.csv:3000002")
        d = m.mnt / "datasets" / "bad"
        d.mkdir()
        (d / "source").write_text(url + "\n")
        assert (d / "data.csv").read_bytes() == text.encode()
        with pytest.raises(OSError) as e:       # waits for the scan
            (d / "v1" / "stats").read_text()
        assert e.value.errno == errno.EINVAL
        assert f"{url}:3000002:" in m.errors()
        for f in (d / "data.csv", d / "v1" / "data.csv", d / "v1" / "stats"):
            with pytest.raises(OSError) as e:
                f.read_bytes()
            assert e.value.errno == errno.EINVAL
        # an import cut by an unmount: every range lands after it began
        good = f"s3://{b}/incoming/{uuid.uuid4().hex[:8]}/good.csv"
        (tmp_path / "good.csv").write_text("a,b\n" + "1,2\n" * 10_000_000)
        assert aws(s3server, "cp", str(tmp_path / "good.csv"), good
                   ).returncode == 0
        g = m.mnt / "datasets" / "good"
        g.mkdir()
        (g / "source").write_text(good + "\n")
        fault(s3server, [{"match": good.split("/", 3)[3], "method": "GET",
                          "times": -1, "action": "delay",
                          "delay_ms": 1500}])
        fd = os.open(g / "data.csv", os.O_RDONLY)
        os.close(fd)                     # the import runs on, unread
        t0 = time.monotonic()
        assert m.stop() == 0
        assert time.monotonic() - t0 < 15
        fault(s3server)
        m.start()
        # the copy stopped: nothing was imported
        assert json.loads((g / "v1" / "lineage").read_text())["hash"] \
            is None
        assert (g / "data.csv").read_bytes() == \
            (tmp_path / "good.csv").read_bytes()
        assert json.loads((g / "v1" / "stats").read_text())["rows"] \
            == 10_000_000
    finally:
        fault(s3server)


def test_first_read_answers_at_once_and_hydrates_the_rest(mlfs_factory,
                                                          s3server):
    m = s3mount(mlfs_factory, s3server)
    d = m.mnt / "datasets" / "wide"
    d.mkdir()
    row = ",".join(f"{i * 0.25:.2f}" for i in range(40)) + ",1\n"
    head = ",".join(f"x{i}" for i in range(40)) + ",label\n"
    body = head + row * (20 * 2**20 // len(row))    # 20 MiB: three blocks
    (d / "data.csv").write_text(body)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    m.stop()
    shutil.rmtree(m.cache)
    m.start()
    f = d / "v1" / "data.csv"
    assert os.getxattr(f, "user.mlfs.state") == b"released"
    fd = os.open(f, os.O_RDONLY)
    try:
        off = 12 * 2**20 + 5
        assert os.pread(fd, 100, off) == body[off:off + 100].encode()
    finally:
        os.close(fd)
    # FSx: the rest of the object follows in the background
    deadline = time.monotonic() + 20
    while os.getxattr(f, "user.mlfs.state") != b"synced":
        assert time.monotonic() < deadline, os.getxattr(f, "user.mlfs.state")
        time.sleep(0.1)
    assert int(os.getxattr(f, "user.mlfs.cached_bytes")) == len(body)
    # it was fetched whole, once, into block files on the local disk
    st = cache_stats(m)
    assert st["fetch_bytes"] == len(body), st
    assert st["bytes_cached"] >= len(body), st
    on_disk = sum(p.stat().st_size for p in (m.cache / "blocks").rglob("*")
                  if p.is_file())
    assert on_disk >= len(body)
    # and is served from there: with the blob gone from the bucket, the
    # whole file still reads, and nothing more is fetched
    man = json.loads(aws(s3server, "cp", f"s3://{s3server['MLFS_S3_BUCKET']}"
                         f"/{m.prefix}/datasets/wide/v1.json", "-").stdout)
    assert aws(s3server, "rm", f"s3://{s3server['MLFS_S3_BUCKET']}/"
               f"{m.prefix}/{man['blob']}").returncode == 0
    assert f.read_text() == body
    after = cache_stats(m)
    assert (after["fetches"], after["fetch_bytes"], after["misses"]) == \
        (st["fetches"], st["fetch_bytes"], st["misses"])


def cache_info(m):
    """.mlfs/cache as a dict of its first word to the rest."""
    info = {}
    for line in (m.mnt / ".mlfs" / "cache").read_text().splitlines():
        k, _, v = line.partition(" ")
        info.setdefault(k, v)
    return info


def cache_stats(m):
    """The numbers in .mlfs/cache, by name."""
    return {k: float(v) if "." in v else int(v)
            for k, v in cache_info(m).items()
            if v.replace(".", "").isdigit()}


def test_large_write_exports_during_its_check_and_a_bad_one_leaves_nothing(
        mlfs_factory, s3server, tmp_path):
    m = s3mount(mlfs_factory, s3server)
    d = m.mnt / "datasets" / "big"
    d.mkdir()
    row = ",".join(f"{i * 0.5:.1f}" for i in range(30)) + ",0\n"
    head = ",".join(f"x{i}" for i in range(30)) + ",label\n"
    n = 66 * 2**20 // len(row)                      # over the 64 MiB mark
    good = tmp_path / "good.csv"
    good.write_text(head + row * n)
    bad = tmp_path / "bad.csv"
    bad.write_text(head + row * n + "1,2\n")
    m.expect("big/data.csv:")
    r = sh(f"cp {bad} {d}/data.csv")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert f"datasets/big/data.csv:{n + 2}:" in m.errors()
    assert not (d / "v1").exists()
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    assert bucket_blobs(s3server, m.prefix) == {}, "the bad file's blob stayed"
    assert sh(f"cp {good} {d}/data.csv").returncode == 0
    assert (d / "v1" / "data.csv").stat().st_size == good.stat().st_size
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    assert_blobs(s3server, m.prefix, good.read_bytes())
    assert sh(f"cmp {good} {d}/v1/data.csv").returncode == 0


# --- the catalog object (mlfs-catalog.json): a fresh mount's fast rebuild

CATALOG = "mlfs-catalog.json"
TRAIN = '{"dataset": "iris", "algorithm": "logistic", "model": "iris"}'


def snapshot(mnt):
    """What a user sees of datasets/, models/ and jobs/: names, alias
    targets, and the bytes of every data.csv and model version file."""
    out = {}
    for top in ("datasets", "models"):
        for obj in sorted((mnt / top).iterdir()):
            for e in sorted(obj.iterdir()):
                rel = f"{top}/{obj.name}/{e.name}"
                if e.is_symlink():
                    out[rel] = "-> " + os.readlink(e)
                elif e.is_dir():
                    for f in sorted(e.iterdir()):
                        if f.name in ("data.csv", "model", "meta.json",
                                      "metrics.json", "sample.csv"):
                            out[f"{rel}/{f.name}"] = f.read_bytes()
                else:
                    out[rel] = "file"
    for j in sorted((mnt / "jobs").iterdir()):
        out[f"jobs/{j.name}/status"] = (j / "status").read_text()
    return out


def catalog_of(s3, prefix):
    """The catalog object, parsed: {"format": 2, "objects": {key: body}}.
    Format 2 is a JSON header line, then "<key length> <body length>",
    the key and the body, each line-ended, for every entry in key order."""
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url",
                        s3["MLFS_S3_DIRECT_ENDPOINT"], "s3", "cp",
                        f"s3://{s3['MLFS_S3_BUCKET']}/{prefix}/{CATALOG}",
                        "-"], capture_output=True, env=dict(os.environ, **s3),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    head, _, rest = r.stdout.partition(b"\n")
    objs, keys = {}, []
    while rest:
        lens, _, rest = rest.partition(b"\n")
        klen, blen = (int(x) for x in lens.split(b" "))
        key, body = rest[:klen], rest[klen + 1:klen + 1 + blen]
        assert rest[klen:klen + 1] == b"\n"
        assert rest[klen + 1 + blen:klen + 2 + blen] == b"\n"
        rest = rest[klen + 2 + blen:]
        keys.append(key.decode())
        objs[key.decode()] = body.decode()
    assert keys == sorted(keys)
    return {"format": json.loads(head)["format"], "objects": objs}


def put_catalog_v1(s3, prefix, cat, tmp):
    """Put cat as the format 1 catalog earlier versions wrote."""
    p = Path(tmp) / "catalog-v1.json"
    p.write_text(json.dumps({"format": 1, "objects": {
        k: {"md5": hashlib.md5(b.encode()).hexdigest(), "body": b}
        for k, b in cat["objects"].items()}}))
    r = aws(s3, "cp", str(p),
            f"s3://{s3['MLFS_S3_BUCKET']}/{prefix}/{CATALOG}")
    assert r.returncode == 0, r.stderr


def rebuild_line(m):
    """The daemon's account of its last full rebuild: (read one by one,
    catalog entries not current).  After a clean handoff that rebuild is
    the check of the index taken from the catalog, which runs after the
    mount is up: wait for it."""
    deadline = time.monotonic() + 20
    while True:
        lines = [ln for ln in m.stderr().splitlines() if "rebuild: " in ln
                 and "read one by one" in ln]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lines, m.stderr()
    w = lines[-1].split("rebuild: ")[1].split()
    return int(w[0]), int(w[6])


def fresh(factory, s3, prefix, sub, delay=0):
    """A new mount of prefix with a new, empty cache; an index from the
    catalog is checked against the bucket after delay seconds."""
    return s3mount(factory, s3, sub=sub, prefix=prefix,
                   opts=[f"verify_delay={delay}"])


def test_catalog_makes_a_fresh_mount_with_the_same_tree(mlfs_factory,
                                                        s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    for name, n in (("iris", 2), ("b", 1), ("c.d-1", 1)):
        d = w.mnt / "datasets" / name
        d.mkdir()
        for i in range(n):
            (d / "data.csv").write_text(IRIS + "5.0,3.6,1.4,0.2,setosa\n" * i)
    os.symlink("v1", w.mnt / "datasets" / "iris" / "first")
    (w.mnt / "train" / "j.json").write_text(TRAIN)
    assert wait_job(w.mnt, "j") == "succeeded\n"
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    before = snapshot(w.mnt)
    w.stop()
    # the bucket holds a catalog whose bodies are the manifests' bytes
    cat = catalog_of(s3server, w.prefix)
    assert cat["format"] == 2
    keys = set(cat["objects"])
    for k in ("datasets/iris/dataset.json", "datasets/iris/v2.json",
              "datasets/c.d-1/v1.json", "models/iris/model.json",
              "models/iris/v1.json", "jobs/j.json"):
        assert k in keys, sorted(keys)
    assert not [k for k in keys if k.startswith("blobs/")]
    for k in ("datasets/iris/v2.json", "models/iris/model.json",
              "jobs/j.json"):
        got = aws(s3server, "cp", f"s3://{s3server['MLFS_S3_BUCKET']}/"
                  f"{w.prefix}/{k}", "-").stdout
        assert got == cat["objects"][k], k
    # a fresh mount takes every manifest from it and shows the same tree
    f = fresh(mlfs_factory, s3server, w.prefix, "f")
    # the writer gave the lease back cleanly: the index came from the
    # catalog alone, and the check against the bucket found it current
    os.listdir(f.mnt)   # served: the index is open
    assert "from the catalog alone" in f.stderr()
    assert rebuild_line(f) == (0, 0)
    assert snapshot(f.mnt) == before
    r = sh(f"echo 6.3,3.3,6.0,2.5 > {f.mnt}/models/iris/predict; "
           f"cat {f.mnt}/models/iris/predict")
    assert r.stdout.startswith("virginica,")
    f.stop()
    # a format 1 catalog, as earlier versions wrote, is still taken whole
    put_catalog_v1(s3server, w.prefix, cat, w.tmp)
    g = fresh(mlfs_factory, s3server, w.prefix, "g")
    os.listdir(g.mnt)
    assert "from the catalog alone" in g.stderr()
    assert rebuild_line(g) == (0, 0)
    assert snapshot(g.mnt) == before
    g.stop()
    # and the writer that read it puts it back as format 2
    assert catalog_of(s3server, w.prefix)["format"] == 2


def test_a_stale_catalog_never_hides_the_bucket(mlfs_factory, s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    for name in ("a", "b", "gone"):
        (w.mnt / "datasets" / name).mkdir()
        (w.mnt / "datasets" / name / "data.csv").write_text(IRIS)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.stop()
    old = catalog_of(s3server, w.prefix)
    assert "datasets/gone/v1.json" in old["objects"]
    bucket = f"s3://{s3server['MLFS_S3_BUCKET']}/{w.prefix}"
    # behind the catalog's back: a manifest changed, one removed, and a
    # version the catalog never saw (put by hand, as another tool would)
    rec = json.loads(old["objects"]["datasets/a/dataset.json"])
    rec["mode"] = 0o700
    v2 = json.loads(old["objects"]["datasets/b/v1.json"])
    v2["version"] = 2
    for key, body in (("datasets/a/dataset.json", rec),
                      ("datasets/b/v2.json", v2)):
        p = Path(w.tmp) / "put.json"
        p.write_text(json.dumps(body, indent=2))
        r = aws(s3server, "cp", str(p), f"{bucket}/{key}")
        assert r.returncode == 0, r.stderr
    for key in ("datasets/gone/v1.json", "datasets/gone/dataset.json"):
        assert aws(s3server, "rm", f"{bucket}/{key}").returncode == 0
    assert catalog_of(s3server, w.prefix) == old
    f = fresh(mlfs_factory, s3server, w.prefix, "f")
    # the changed and the new object were read one by one; the old
    # entries of the changed and the removed ones were left unused
    assert rebuild_line(f) == (2, 3)
    ds = f.mnt / "datasets"
    assert sorted(os.listdir(ds)) == ["a", "b"]
    assert oct(os.stat(ds / "a").st_mode & 0o777) == oct(0o700)
    assert {"v1", "v2"} <= set(os.listdir(ds / "b"))
    assert os.readlink(ds / "b" / "latest") == "v2"
    assert (ds / "b" / "v2" / "data.csv").read_text() == IRIS
    # the new writer puts a catalog that is current again
    (f.mnt / ".mlfs" / "cache").write_text("sync\n")
    new = catalog_of(s3server, w.prefix)
    assert "datasets/b/v2.json" in new["objects"]
    assert "datasets/gone/v1.json" not in new["objects"]
    f.stop()
    g = fresh(mlfs_factory, s3server, w.prefix, "g")
    assert rebuild_line(g) == (0, 0)
    assert sorted(os.listdir(g.mnt / "datasets")) == ["a", "b"]


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"format": 9}',
                                     b'{"format":1,"objects":{"datasets/x'
                                     b'/dataset.json":{"md5":"00","body":'
                                     b'7}}}', b"\x00\xff" * 100,
                                     b'{"format":2}\n'
                                     b'26 2\ndatasets/x/dataset.json\n{}',
                                     b'{"format":2}\n'
                                     b'25 2\ndatasets/x/dataset.json\n{}\n'])
def test_a_garbage_catalog_is_a_plain_rebuild(mlfs_factory, s3server,
                                              garbage):
    w = s3mount(mlfs_factory, s3server, sub="w")
    (w.mnt / "datasets" / "iris").mkdir()
    (w.mnt / "datasets" / "iris" / "data.csv").write_text(IRIS)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.stop()
    p = Path(w.tmp) / "garbage"
    p.write_bytes(garbage)
    r = aws(s3server, "cp", str(p), f"s3://{s3server['MLFS_S3_BUCKET']}/"
            f"{w.prefix}/{CATALOG}")
    assert r.returncode == 0, r.stderr
    f = fresh(mlfs_factory, s3server, w.prefix, "f")
    assert rebuild_line(f)[0] == 2   # dataset.json and v1.json
    assert (f.mnt / "datasets" / "iris" / "v1" / "data.csv").read_text() \
        == IRIS
    assert os.readlink(f.mnt / "datasets" / "iris" / "latest") == "v1"


def expire_lease(s3, prefix, tmp):
    """Rewrite the lease object as it is but expired, as its holder's
    lease would be 30 s after its last renewal (mounts compare "expires"
    with the clock): no waiting 30 s."""
    bucket = f"s3://{s3['MLFS_S3_BUCKET']}/{prefix}"
    lease = lease_of(s3, prefix)
    lease["expires"] = 0
    p = Path(tmp) / "lease.json"
    p.write_text(json.dumps(lease))
    assert aws(s3, "cp", str(p), f"{bucket}/mlfs-lease").returncode == 0


def test_after_a_crash_a_fresh_mount_does_not_trust_the_catalog(
        mlfs_factory, s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    (w.mnt / "datasets" / "iris").mkdir()
    (w.mnt / "datasets" / "iris" / "data.csv").write_text(IRIS)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.kill9()                       # the lease stays behind, unexpired
    time.sleep(0.1)
    # the crashed writer's lease, expired (by hand: no waiting 30 s)
    expire_lease(s3server, w.prefix, w.tmp)
    bucket = f"s3://{s3server['MLFS_S3_BUCKET']}/{w.prefix}"
    p = Path(w.tmp) / "v2.json"
    # and a version the catalog never saw (put by hand while it was down)
    v2 = json.loads(catalog_of(s3server, w.prefix)["objects"]
                    ["datasets/iris/v1.json"])
    v2["version"] = 2
    p.write_text(json.dumps(v2, indent=2))
    assert aws(s3server, "cp", str(p),
               f"{bucket}/datasets/iris/v2.json").returncode == 0
    f = fresh(mlfs_factory, s3server, w.prefix, "f")
    (f.mnt / "datasets" / "after").mkdir()      # it took the lease: a writer
    os.listdir(f.mnt)   # served: the index is open
    assert "from the catalog alone" not in f.stderr()
    # the LIST before the mount read the one manifest the catalog lacks;
    # the rest matched the catalog's entries
    assert rebuild_line(f) == (1, 0)
    assert os.readlink(f.mnt / "datasets" / "iris" / "latest") == "v2"
    for v in ("v1", "v2"):
        assert (f.mnt / "datasets" / "iris" / v / "data.csv").read_text() \
            == IRIS
    f.stop()
    # a clean unmount hands over: the next fresh mount trusts the catalog
    g = fresh(mlfs_factory, s3server, w.prefix, "g")
    os.listdir(g.mnt)   # served: the index is open
    assert "from the catalog alone" in g.stderr()
    assert (g.mnt / "datasets" / "iris" / "v1" / "data.csv").read_text() \
        == IRIS


def test_a_corrupt_cached_block_is_fetched_again_never_served(mlfs_factory,
                                                              s3server):
    m = s3mount(mlfs_factory, s3server)
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    f = d / "v1" / "data.csv"
    m.stop()                        # the kernel's page cache goes with it
    shutil.rmtree(m.cache)
    m.start()
    assert f.read_text() == IRIS    # fetched into the block cache
    assert os.getxattr(f, "user.mlfs.state") == b"synced"
    m.stop()
    # flip a byte in every cached block file that holds the content
    hit = 0
    for p in (m.cache / "blocks").rglob("*"):
        if p.is_file() and p.stat().st_size >= len(IRIS) and \
                b"setosa" in p.read_bytes():
            b = bytearray(p.read_bytes())
            b[100] ^= 0x55
            p.write_bytes(bytes(b))
            hit += 1
    assert hit >= 1
    m.start()
    assert f.read_text() == IRIS
    assert cache_stats(m)["corrupt_blocks"] >= 1


# --- blobs are verified on the way in (issue 21, point 2)

def put_blob(s3, prefix, key, data, tmp):
    """Overwrite key under prefix in the bucket with data, in place."""
    p = tmp / "blob"
    p.write_bytes(data)
    r = aws(s3, "cp", str(p), f"s3://{s3['MLFS_S3_BUCKET']}/{prefix}/{key}")
    assert r.returncode == 0, r.stderr


def fresh_cache(m):
    """Restart m with an empty cache: every blob is fetched again."""
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    m.stop()            # the kernel's page cache goes with the mount
    shutil.rmtree(m.cache)
    m.start()


def test_a_blob_changed_in_place_is_eio_and_never_served(mlfs_factory,
                                                         s3server, tmp_path):
    m = s3mount(mlfs_factory, s3server)
    m.expect(r"damaged: ")
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    key = blob_key(IRIS.encode())
    # same key, same size, other bytes: what the bucket is not to be
    # trusted with
    bad = IRIS.replace("virginica", "virginicb", 1).encode()
    assert len(bad) == len(IRIS)
    fresh_cache(m)
    put_blob(s3server, m.prefix, key, bad, tmp_path)
    f = d / "v1" / "data.csv"
    with pytest.raises(OSError) as e:
        f.read_bytes()
    assert e.value.errno == errno.EIO
    assert f"datasets/iris/v1/data.csv: {key}: " in m.errors()
    assert cache_stats(m)["corrupt_objects"] == 1
    # nothing of it was kept
    assert int(os.getxattr(f, "user.mlfs.cached_bytes")) == 0
    # a job does not train on it either, and says why
    (m.mnt / "train" / "j.json").write_text(
        '{"dataset": "iris", "algorithm": "logistic"}')
    assert wait_job(m.mnt, "j").startswith(
        "failed: the dataset's content in the store does not match")
    assert f"jobs/j: {key}: " in m.errors()
    # the bucket repaired, the same mount reads it
    put_blob(s3server, m.prefix, key, IRIS.encode(), tmp_path)
    assert f.read_text() == IRIS


def test_a_truncated_blob_is_eio_not_a_short_read(mlfs_factory, s3server,
                                                  tmp_path):
    m = s3mount(mlfs_factory, s3server)
    m.expect(r"damaged: ")
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    key = blob_key(IRIS.encode())
    fresh_cache(m)
    put_blob(s3server, m.prefix, key, IRIS.encode()[:-100], tmp_path)
    f = d / "v1" / "data.csv"
    with pytest.raises(OSError) as e:
        f.read_bytes()
    assert e.value.errno == errno.EIO
    assert key in m.errors()
    assert cache_stats(m)["corrupt_objects"] == 1
    put_blob(s3server, m.prefix, key, IRIS.encode(), tmp_path)
    assert f.read_text() == IRIS


def test_a_manifest_gone_from_the_bucket_is_reported_and_models_say_so(
        mlfs_factory, s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = w.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (d / "data.csv").write_text(IRIS + "5.0,3.6,1.4,0.2,setosa\n")
    (w.mnt / "train" / "j.json").write_text(
        '{"dataset": "iris@1", "algorithm": "logistic"}')
    assert wait_job(w.mnt, "j") == "succeeded\n"
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.stop()
    b = s3server["MLFS_S3_BUCKET"]
    for v in ("v1", "v2"):      # behind the platform's back
        assert aws(s3server, "rm", f"s3://{b}/{w.prefix}/datasets/iris/"
                   f"{v}.json").returncode == 0
    # a fresh mount: the catalog still names them, the bucket does not
    f = fresh(mlfs_factory, s3server, w.prefix, "f")
    f.expect(r"damaged: ")
    deadline = time.monotonic() + 20
    while "checked against the bucket" not in f.stderr():
        assert time.monotonic() < deadline, f.stderr()
        time.sleep(0.1)
    log = f.stderr()
    assert "damaged: datasets/iris/v1.json: missing from the bucket; " \
        "trained on it: j v1" in log
    assert "damaged: datasets/iris/v2.json: missing from the bucket" in log
    errors = f.errors()
    assert "datasets/iris/v1.json: missing from the bucket" in errors
    assert not (f.mnt / "datasets" / "iris" / "v1").exists()
    # the model's lineage says so
    meta = json.loads((f.mnt / "models" / "j" / "v1" / "meta.json")
                      .read_text())
    assert meta["dataset"]["name"] == "iris"
    assert meta["dataset"]["version"] == 1
    assert meta["dataset"]["missing"] == \
        "datasets/iris/v1.json is missing from the bucket"
    # and so does the reason an rmdir of the dataset is refused
    f.expect("rejected")
    with pytest.raises(OSError) as e:
        (f.mnt / "datasets" / "iris").rmdir()
    assert e.value.errno == errno.EBUSY
    assert "model j was trained on v1, whose manifest is missing from " \
        "the bucket" in f.errors()


def test_df_shows_the_cache_and_a_full_cache_is_enospc(mlfs_factory,
                                                      s3server):
    m = s3mount(mlfs_factory, s3server, opts=["cache_size=2M"])
    sv = os.statvfs(m.mnt)
    assert sv.f_blocks * sv.f_frsize == 2 * 2**20
    d = m.mnt / "datasets" / "big"
    d.mkdir()
    row = "1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,1\n"
    text = "a,b,c,d,e,f,g,h,i,label\n" + row * (3 * 2**20 // len(row))
    # the ENOSPC is the writer's answer alone: the daemon logs no line
    # for it, so none is declared expected
    with pytest.raises(OSError) as e:
        (d / "data.csv").write_text(text)   # more than the cache holds
    assert e.value.errno == errno.ENOSPC
    assert not (d / "v1").exists()
    (d / "data.csv").write_text(IRIS)       # what fits still goes in
    assert (d / "v1" / "data.csv").read_text() == IRIS
    sv = os.statvfs(m.mnt)
    assert sv.f_bfree * sv.f_frsize <= 2 * 2**20 - len(IRIS)


def test_gc_removes_unreferenced_blobs_locally_and_in_the_bucket(
        mlfs_factory, s3server, tmp_path):
    m = s3mount(mlfs_factory, s3server, opts=["gc_grace=0"])
    b = s3server["MLFS_S3_BUCKET"]
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    v1 = IRIS.encode()
    v2 = (IRIS + "5.0,3.6,1.4,0.2,setosa\n").encode()
    (d / "data.csv").write_bytes(v1)
    (d / "data.csv").write_bytes(v2)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    # each version's lineage names its content's hash, and its blob
    # holds that content under that name
    for v, c in (("v1", v1), ("v2", v2)):
        lin = json.loads((d / v / "lineage").read_text())
        assert lin["hash"] == xxh128(c) and lin["size"] == len(c)
    assert_blobs(s3server, m.prefix, v1, v2)
    # rmdir of a version releases its blob at once, in the bucket too
    (d / "v1").rmdir()
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    assert_blobs(s3server, m.prefix, v2)
    # an orphan (a crash between a blob's put and its manifest) is gc's
    orphan = "blobs/01/0123456789abcdef0123456789abcdef"
    (tmp_path / "o").write_text("orphan")
    assert aws(s3server, "cp", str(tmp_path / "o"),
               f"s3://{b}/{m.prefix}/{orphan}").returncode == 0
    assert_blobs(s3server, m.prefix, v2, extra={orphan: b"orphan"})
    (m.mnt / ".mlfs" / "cache").write_text("gc\n")
    assert_blobs(s3server, m.prefix, v2)
    assert "gc: removed 1 unreferenced blob" in m.stderr()
    assert (d / "v2" / "data.csv").read_bytes() == v2
    # the default grace (10 minutes) spares young blobs
    m.stop()
    m.opts = [o for o in m.opts if o != "gc_grace=0"]
    m.start()
    assert aws(s3server, "cp", str(tmp_path / "o"),
               f"s3://{b}/{m.prefix}/{orphan}").returncode == 0
    (m.mnt / ".mlfs" / "cache").write_text("gc\n")
    assert_blobs(s3server, m.prefix, v2, extra={orphan: b"orphan"})


def test_the_check_of_a_catalog_index_waits_for_the_first_change(
        mlfs_factory, s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    for name in ("a", "gone"):
        (w.mnt / "datasets" / name).mkdir()
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")   # a clean handoff
    w.stop()
    bucket = f"s3://{s3server['MLFS_S3_BUCKET']}/{w.prefix}"
    assert aws(s3server, "rm", f"{bucket}/datasets/gone/dataset.json"
               ).returncode == 0
    # reads see the catalog's view at once; the check is deferred
    e = fresh(mlfs_factory, s3server, w.prefix, "e", delay=60)
    os.listdir(e.mnt)   # served: the index is open
    assert "from the catalog alone" in e.stderr()
    assert sorted(os.listdir(e.mnt / "datasets")) == ["a", "gone"]
    assert "read one by one" not in e.stderr()
    # the first change waits for it, and is made on the bucket's truth
    (e.mnt / "datasets" / "new").mkdir()
    assert "read one by one" in e.stderr()
    assert sorted(os.listdir(e.mnt / "datasets")) == ["a", "new"]


def test_a_reader_mount_never_imports_a_lazy_version(mlfs_factory, s3server,
                                                     tmp_path):
    b = s3server["MLFS_S3_BUCKET"]
    url = f"s3://{b}/incoming/{uuid.uuid4().hex[:8]}/iris.csv"
    (tmp_path / "iris.csv").write_text(IRIS)
    assert aws(s3server, "cp", str(tmp_path / "iris.csv"), url
               ).returncode == 0
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = w.mnt / "datasets" / "lazy"
    d.mkdir()
    (d / "source").write_text(url + "\n")
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    r = s3mount(mlfs_factory, s3server, sub="r", prefix=w.prefix,
                opts=["import_ttl=1"])
    rf = r.mnt / "datasets" / "lazy" / "v1" / "data.csv"
    r.expect("not imported yet")
    with pytest.raises(OSError) as e:
        rf.read_text()
    assert e.value.errno == errno.EROFS
    assert "the writer mount imports it" in r.errors()
    assert (d / "v1" / "data.csv").read_text() == IRIS   # the writer does
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    deadline = time.monotonic() + 15
    while True:
        try:
            assert rf.read_text() == IRIS
            break
        except OSError:
            assert time.monotonic() < deadline, "the reader never saw it"
            time.sleep(0.5)


@FAULT_PROXY
@pytest.mark.parametrize("rule,fails", [
    ({"action": "reset"}, True),                     # connection resets
    ({"action": "close"}, True),                     # no answer at all
    ({"action": "truncate"}, True),                  # half a body, then RST
    ({"action": "delay", "delay_ms": 300}, False),   # slow, but answers
    ({"action": "slow", "delay_ms": 300}, False),    # a trickled body
])
def test_faults_through_the_mount(mlfs_factory, s3server, rule, fails):
    try:
        m = fault_mount(mlfs_factory, s3server, "g")
        d = m.mnt / "datasets" / "iris"
        d.mkdir()
        (d / "data.csv").write_text(IRIS)
        (d / "data.csv").write_text(IRIS + "1,1,1,1,setosa\n")
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        assert (d / "v2" / "data.csv").read_text().endswith("setosa\n")
        (m.mnt / ".mlfs" / "cache").write_text(
            "release datasets/iris/v1/data.csv\n")
        fault(s3server, [dict(rule, match="blobs/", times=-1)])
        t0 = time.monotonic()
        # cached content never needs the server
        assert (d / "v2" / "data.csv").read_text().endswith("setosa\n")
        if fails:
            with pytest.raises(OSError) as e:
                (d / "v1" / "data.csv").read_text()
            assert e.value.errno == errno.EIO
        else:
            assert (d / "v1" / "data.csv").read_text() == IRIS
        assert time.monotonic() - t0 < 60, "no hang: bounded retries"
        fault(s3server)
        assert (d / "v1" / "data.csv").read_text() == IRIS   # back again
    finally:
        fault(s3server)


# --- mount options: ro, log=, region=

def test_an_ro_mount_reads_refuses_every_change_and_takes_no_lease(
        mlfs_factory, s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = w.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.stop()                        # the lease is given back
    r = s3mount(mlfs_factory, s3server, sub="r", prefix=w.prefix,
                opts=["ro"])
    rd = r.mnt / "datasets" / "iris"
    assert (rd / "v1" / "data.csv").read_text() == IRIS
    assert sorted(os.listdir(r.mnt / "datasets")) == ["iris"]
    before = sorted(os.listdir(rd))
    changes = {
        "mkdir": lambda: (r.mnt / "datasets" / "new").mkdir(),
        "write": lambda: (rd / "data.csv").write_text(IRIS),
        "rmdir": lambda: (rd / "v1").rmdir(),
        "symlink": lambda: os.symlink("v1", rd / "first"),
        "spec": lambda: (r.mnt / "train" / "j.json").write_text(TRAIN),
    }
    changes.update({
        "touch": lambda: os.utime(rd / "data.csv"),
        "mkfifo": lambda: os.mkfifo(rd / "fifo"),
        "setfattr": lambda: os.setxattr(rd / "data.csv", "user.x", b"1"),
        "link": lambda: os.link(rd / "data.csv", rd / "again.csv"),
    })
    for what, change in changes.items():
        with pytest.raises(OSError) as e:
            change()
        assert e.value.errno == errno.EROFS, what
    # it says so: in its log at mount, and in .mlfs/cache
    assert "read-only mount" in r.stderr()
    info = cache_info(r)
    assert (info["mode"], info["lease"]) == ("ro", "reader")
    assert info["lease_why"] == "mounted with -o ro"
    # nothing changed, here or in the bucket
    assert sorted(os.listdir(rd)) == before
    assert sorted(os.listdir(r.mnt / "datasets")) == ["iris"]
    # it took no lease: a writer mounts beside it and writes
    w.start()
    (w.mnt / "datasets" / "after").mkdir()
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    ls = aws(s3server, "ls", "--recursive",
             f"s3://{s3server['MLFS_S3_BUCKET']}/{w.prefix}/datasets/")
    assert "datasets/after/dataset.json" in ls.stdout
    assert "datasets/new/" not in ls.stdout
    assert "datasets/iris/v2.json" not in ls.stdout


def test_log_option_sends_the_daemons_lines_to_the_file(mlfs_factory,
                                                        s3server, tmp_path):
    log = tmp_path / "mlfs.log"
    m = s3mount(mlfs_factory, s3server, opts=[f"log={log}"])
    (m.mnt / "datasets" / "iris").mkdir()
    (m.mnt / "datasets" / "iris" / "data.csv").write_text(IRIS)
    m.stop()
    lines = log.read_text().splitlines()
    for want in (f"mlfs: mounted s3://{s3server['MLFS_S3_BUCKET']}/"
                 f"{m.prefix} on {m.mnt}",
                 "mlfs: datasets/iris: v1 from python3",
                 f"mlfs: unmounting {m.mnt}"):
        assert want in lines, lines
    assert not [ln for ln in lines if BAD_LINE.search(ln)], lines
    # and not to stderr, though the daemon ran in the foreground (-f)
    assert m.stderr() == ""


def test_region_option_signs_for_that_region(mlfs_factory, s3server,
                                             tmp_path):
    """The gateway knows one region (us-east-1) and refuses a request
    whose SigV4 credential scope names another."""
    assert s3server["MLFS_S3_REGION"] == "us-east-1"
    (tmp_path / "mnt").mkdir()
    url = f"s3://{s3server['MLFS_S3_BUCKET']}/rg-{uuid.uuid4().hex[:8]}"

    def mount(region_opt, env_region):
        env = dict(os.environ, **s3server)
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = env_region
        o = [f"cache={tmp_path}/c-{uuid.uuid4().hex[:6]}",
             f"endpoint={s3server['MLFS_S3_ENDPOINT']}", "path_style"]
        if region_opt:
            o.append(f"region={region_opt}")
        return subprocess.run([str(MLFS), "-o", ",".join(o), url,
                               str(tmp_path / "mnt")], capture_output=True,
                              text=True, env=env, timeout=60)

    # tests/s3/start.sh DIR: the gateway logs each request's status in
    # DIR/gateway.log, and the bucket's files are in DIR/data
    gwlog = Path(s3server["MLFS_S3_DATA"]).parent / "gateway.log"
    probe = f"prefix={url.rsplit('/', 1)[1]}%2F HTTP/1.1\" "

    def refused():
        return [ln for ln in gwlog.read_text().splitlines()
                if probe + "400 " in ln]

    # signed for eu-west-1: the gateway refuses the first request (400
    # AuthorizationHeaderMalformed), and the mount fails in one line
    r = mount("eu-west-1", "us-east-1")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "bad S3 options" in r.stderr
    assert len(refused()) == 1
    assert not is_mounted(tmp_path / "mnt")
    # the environment's region is the default ...
    r = mount(None, "eu-west-1")
    assert r.returncode == 1 and "bad S3 options" in r.stderr, r.stderr
    assert len(refused()) == 2
    # ... and region= overrides it
    m = mlfs_factory(opts=[f"endpoint={s3server['MLFS_S3_ENDPOINT']}",
                           "path_style", "region=us-east-1"], url=url,
                     env=dict(s3server, AWS_REGION="eu-west-1",
                              AWS_DEFAULT_REGION="eu-west-1"))
    m.prefix = url.split("/", 3)[3]
    (m.mnt / "datasets" / "iris").mkdir()
    (m.mnt / "datasets" / "iris" / "data.csv").write_text(IRIS)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    assert_blobs(s3server, m.prefix, IRIS.encode())
    assert len(refused()) == 2


# --- the lease: one writer per prefix

def lease_of(s3, prefix):
    """The lease object, read straight from s3rver (it serves unsigned
    GETs)."""
    import urllib.request
    url = (f"{s3['MLFS_S3_DIRECT_ENDPOINT']}/{s3['MLFS_S3_BUCKET']}/"
           f"{prefix}/mlfs-lease")
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def writes(m, name):
    """True if m accepts a change (mkdir datasets/name), False if it
    refuses it with EROFS."""
    try:
        (m.mnt / "datasets" / name).mkdir()
        return True
    except OSError as e:
        assert e.errno == errno.EROFS, e
        return False


def start_together(factory, s3, prefix, subs):
    """Two mounts of prefix whose daemons start in the same instant."""
    go = threading.Barrier(len(subs))

    def start(sub):
        go.wait(timeout=30)
        return s3mount(factory, s3, sub=sub, prefix=prefix)

    with ThreadPoolExecutor(len(subs)) as ex:
        return list(ex.map(start, subs))


def mount_id(m):
    return cache_info(m)["mount_id"]


def the_one_writer(s3, pair, what):
    """The one mount of pair that accepts changes (the other refuses
    them with EROFS), which the lease in the bucket names."""
    took = [m for m in pair if writes(m, m.tmp.name)]
    assert len(took) == 1, f"{what}: {len(took)} writers"
    assert lease_of(s3, pair[0].prefix)["owner"] == mount_id(took[0]), what
    return took[0]


@FAULT_PROXY
def test_two_mounts_that_both_find_no_lease_give_one_writer(mlfs_factory,
                                                            s3server):
    """The race, made certain: mount b (through the fault proxy) finds no
    lease and its PUT of one is held 5 s; meanwhile mount a (through the
    plain gateway) also finds none, puts its own and re-reads it; then
    b's PUT lands."""
    prefix = f"race-{uuid.uuid4().hex[:8]}"
    held = 5.0
    try:
        fault(s3server, [{"match": "/mlfs-lease", "method": "PUT",
                          "times": 1, "action": "delay",
                          "delay_ms": int(held * 1000)}])
        with ThreadPoolExecutor(1) as ex:
            b = ex.submit(s3mount, mlfs_factory, s3server, sub="b",
                          prefix=prefix,
                          endpoint=s3server["MLFS_S3_FAULT_ENDPOINT"])
            deadline = time.monotonic() + 15
            while fault_rules(s3server)[0]["hits"] == 0:
                assert time.monotonic() < deadline, "b never put a lease"
                time.sleep(0.05)
            t0 = time.monotonic()
            a = s3mount(mlfs_factory, s3server, sub="a", prefix=prefix)
            assert time.monotonic() - t0 < held, "a mounted too slowly " \
                "to take the lease while b's PUT was held"
            b = b.result()
    finally:
        fault(s3server)
    the_one_writer(s3server, [a, b], "both found no lease")


ROUNDS = 20


def test_two_writer_mounts_started_together_give_one_writer(mlfs_factory,
                                                           s3server):
    for i in range(ROUNDS):
        pair = start_together(mlfs_factory, s3server,
                              f"race-{uuid.uuid4().hex[:8]}",
                              (f"a{i}", f"b{i}"))
        the_one_writer(s3server, pair, f"round {i}")
        for m in pair:
            m.stop()


def test_a_stalled_writer_whose_lease_expired_stops_exporting(mlfs_factory,
                                                              s3server):
    b = s3server["MLFS_S3_BUCKET"]
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = w.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    new = (IRIS + "5.0,3.6,1.4,0.2,setosa\n").encode()     # the new writer's
    stale = (IRIS + "4.4,2.9,1.4,0.2,setosa\n").encode()   # the stalled one's
    # the writer stalls (a GC pause, a VM migration); nothing may touch
    # its mountpoint meanwhile
    os.kill(w.proc.pid, signal.SIGSTOP)
    try:
        expire_lease(s3server, w.prefix, w.tmp)   # its lease runs out
        n = s3mount(mlfs_factory, s3server, sub="n", prefix=w.prefix)
        assert writes(n, "n"), "the new mount did not take the lease"
        (n.mnt / "datasets" / "iris" / "data.csv").write_bytes(new)
        (n.mnt / ".mlfs" / "cache").write_text("sync\n")
    finally:
        os.kill(w.proc.pid, signal.SIGCONT)
    # the stalled writer comes back.  It may take a change before it
    # notices, but nothing of it reaches the bucket
    try:
        (d / "data.csv").write_bytes(stale)
    except OSError as e:
        assert e.errno == errno.EROFS
    sh(f"echo sync > {w.mnt}/.mlfs/cache")   # its exports, if any, now
    man = json.loads(aws(s3server, "cp", f"s3://{b}/{w.prefix}/datasets/"
                         "iris/v2.json", "-").stdout)
    assert man["blob"] == blob_key(new), "the new writer's v2 was replaced"
    assert blob_key(stale) not in bucket_blobs(s3server, w.prefix)
    # within a renewal period (a third of the 30 s lease) it refuses
    # every change, and the new writer keeps the lease
    deadline = time.monotonic() + 15
    k = 0
    while writes(w, f"late{k}"):
        assert time.monotonic() < deadline, "the stalled one still writes"
        k += 1
        time.sleep(0.5)
    sh(f"echo sync > {w.mnt}/.mlfs/cache")
    assert lease_of(s3server, w.prefix)["owner"] == mount_id(n)
    assert cache_info(w)["lease"] == "fenced"
    assert "the lease was taken by another mlfs" in \
        cache_info(w)["lease_why"]
    with pytest.raises(OSError) as e:
        (w.mnt / "datasets" / "iris" / "data.csv").write_bytes(stale)
    assert e.value.errno == errno.EROFS
    assert "read-only: the lease was taken by another mlfs" in \
        (w.mnt / ".mlfs" / "errors").read_text()
    assert cache_info(w)["mode"] == "ro"
    assert writes(n, "n2")
    (n.mnt / ".mlfs" / "cache").write_text("sync\n")
    ls = aws(s3server, "ls", "--recursive",
             f"s3://{b}/{w.prefix}/datasets/")
    assert "datasets/n2/dataset.json" in ls.stdout
    assert "datasets/late" not in ls.stdout
    assert (n.mnt / "datasets" / "iris" / "v2" / "data.csv").read_bytes() \
        == new


def writer_tag(s3, prefix, key):
    """An object's x-amz-meta-mlfs-writer ("<mount id>/<generation>"),
    read straight from s3rver."""
    import urllib.request
    req = urllib.request.Request(f"{s3['MLFS_S3_DIRECT_ENDPOINT']}/"
                                 f"{s3['MLFS_S3_BUCKET']}/{prefix}/{key}",
                                 method="HEAD")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers["x-amz-meta-mlfs-writer"]


@FAULT_PROXY
def test_a_stalled_writers_sync_never_puts_its_catalog_over_the_new_one(
        mlfs_factory, s3server):
    """`sync` puts the catalog straight to S3, not through the outbox and
    its export gate: a writer that lost its lease while stalled, and has
    not noticed yet, put its stale catalog over the new writer's, and a
    fresh mount after the new writer's clean unmount, trusting that
    catalog alone, did not show the new writer's version (found by
    tests/stress/s3_writers.py's catalog check)."""
    try:
        w = fault_mount(mlfs_factory, s3server, "cat")
        d = w.mnt / "datasets" / "iris"
        d.mkdir()
        (d / "data.csv").write_text(IRIS)
        (w.mnt / ".mlfs" / "cache").write_text("sync\n")
        # a change whose catalog has not reached the bucket yet; its
        # version has (the outbox is empty)
        fault(s3server, [{"match": CATALOG, "method": "PUT", "times": -1,
                          "action": "status", "status": 503,
                          "code": "SlowDown"}])
        (d / "data.csv").write_text(IRIS + "5.0,3.6,1.4,0.2,setosa\n")
        deadline = time.monotonic() + 30
        while cache_info(w)["exports_queued"] != "0":
            assert time.monotonic() < deadline, "v2 was never exported"
            time.sleep(0.1)
        os.kill(w.proc.pid, signal.SIGSTOP)
        try:
            # it stalls past its lease; its lease thread is slow to learn
            # that it lost it (the lease object answers it late)
            fault(s3server, [{"match": "/mlfs-lease", "times": -1,
                              "action": "delay", "delay_ms": 3000}])
            expire_lease(s3server, w.prefix, w.tmp)
            n = s3mount(mlfs_factory, s3server, sub="n", prefix=w.prefix)
            (n.mnt / "datasets" / "iris" / "data.csv").write_text(
                IRIS + "4.4,2.9,1.4,0.2,setosa\n")
            (n.mnt / ".mlfs" / "cache").write_text("sync\n")
            ours = writer_tag(s3server, w.prefix, CATALOG)
            assert ours.startswith(mount_id(n) + "/")
        finally:
            os.kill(w.proc.pid, signal.SIGCONT)
        # the stalled writer's sync: the lease is not its own any more
        with pytest.raises(OSError) as e:
            (w.mnt / ".mlfs" / "cache").write_text("sync\n")
        assert e.value.errno == errno.EROFS
        assert writer_tag(s3server, w.prefix, CATALOG) == ours
    finally:
        fault(s3server)
    deadline = time.monotonic() + 15
    while cache_info(w)["lease"] != "fenced":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    n.stop()        # a clean handoff: the next fresh mount trusts the catalog
    f = fresh(mlfs_factory, s3server, w.prefix, "f", delay=60)
    os.listdir(f.mnt)
    assert "from the catalog alone" in f.stderr()
    assert sorted(v for v in os.listdir(f.mnt / "datasets" / "iris")
                  if v[1:].isdigit()) == ["v1", "v2", "v3"]


def test_a_missing_s3_source_fails_the_shells_echo(mlfs_factory, s3server):
    b = s3server["MLFS_S3_BUCKET"]
    m = mlfs_factory(opts=[f"endpoint={s3server['MLFS_S3_ENDPOINT']}",
                           "path_style"], env=s3server)
    m.expect("rejected")
    d = m.mnt / "datasets" / "cust"
    d.mkdir()
    url = f"s3://{b}/missing/{uuid.uuid4().hex[:8]}.csv"
    r = subprocess.run(["bash", "-c", f"echo {url} > {d}/source"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "write error" in r.stderr, r.stderr
    assert not any(p[1:].isdigit() for p in os.listdir(d))


def test_the_lease_names_a_random_mount_id_and_nothing_private(
        mlfs_factory, s3server):
    m = s3mount(mlfs_factory, s3server)
    lease = lease_of(s3server, m.prefix)
    assert sorted(lease) == ["clean", "expires", "generation", "owner"]
    assert re.fullmatch(r"[0-9a-f]{32}", lease["owner"])
    assert lease["owner"] == mount_id(m)
    assert lease["generation"] == 1 and lease["clean"] is False
    info = cache_info(m)
    assert (info["lease"], info["mode"]) == ("writer", "rw")
    # every object it puts says who wrote it, under which generation
    (m.mnt / "datasets" / "iris").mkdir()
    (m.mnt / "datasets" / "iris" / "data.csv").write_text(IRIS)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    env = dict(os.environ, **s3server)
    head = subprocess.run(
        ["/usr/bin/aws", "--endpoint-url",
         s3server["MLFS_S3_DIRECT_ENDPOINT"], "s3api", "head-object",
         "--bucket", s3server["MLFS_S3_BUCKET"],
         "--key", f"{m.prefix}/datasets/iris/v1.json"],
        capture_output=True, text=True, env=env, timeout=60)
    assert head.returncode == 0, head.stderr
    assert json.loads(head.stdout)["Metadata"]["mlfs-writer"] == \
        f"{mount_id(m)}/1"
    # a clean unmount gives it back, expired and clean; the next writer
    # takes the next generation
    m.stop()
    lease = lease_of(s3server, m.prefix)
    assert lease["clean"] is True and lease["expires"] <= time.time()
    m.start()
    assert lease_of(s3server, m.prefix)["generation"] == 2


@FAULT_PROXY
def test_a_stale_cache_remounted_after_a_new_writer_published_keeps_its_outbox_aside(
        mlfs_factory, s3server):
    b = s3server["MLFS_S3_BUCKET"]
    a = s3mount(mlfs_factory, s3server, sub="a",
                endpoint=s3server["MLFS_S3_FAULT_ENDPOINT"])
    d = a.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (a.mnt / ".mlfs" / "cache").write_text("sync\n")
    stale = (IRIS + "4.4,2.9,1.4,0.2,setosa\n").encode()
    new = (IRIS + "5.0,3.6,1.4,0.2,setosa\n").encode()
    try:
        # a's exports fail from now on: its v2 stays in its outbox
        fault(s3server, [{"match": f"/{a.prefix}/", "method": "PUT",
                          "times": -1, "action": "status", "status": 503}])
        (d / "data.csv").write_bytes(stale)     # close returned 0: outbox
        a.kill9()
    finally:
        fault(s3server)
    expire_lease(s3server, a.prefix, a.tmp)
    n = s3mount(mlfs_factory, s3server, sub="n", prefix=a.prefix)
    (n.mnt / "datasets" / "iris" / "data.csv").write_bytes(new)
    (n.mnt / ".mlfs" / "cache").write_text("sync\n")
    n.stop()
    # a's cache comes back: its outbox was written under a generation
    # the bucket has left behind, so it is kept aside, never exported
    a.expect("is not exported: the bucket is at generation")
    a.start()
    info = cache_info(a)
    assert info["lease"] == "writer" and info["lease_generation"] == "3"
    kept = Path(info["kept_outbox"])
    assert kept.is_dir() and kept.parent == a.cache / "kept"
    assert any(p.read_bytes() == stale for p in kept.iterdir()
               if p.is_file())
    man = json.loads(aws(s3server, "cp", f"s3://{b}/{a.prefix}/datasets/"
                         "iris/v2.json", "-").stdout)
    assert man["blob"] == blob_key(new)
    assert blob_key(stale) not in bucket_blobs(s3server, a.prefix)
    # and its index was rebuilt from the bucket: it sees the new writer's
    assert (a.mnt / "datasets" / "iris" / "v2" / "data.csv").read_bytes() \
        == new
    (a.mnt / "datasets" / "iris" / "data.csv").write_bytes(stale)
    (a.mnt / ".mlfs" / "cache").write_text("sync\n")
    assert os.readlink(a.mnt / "datasets" / "iris" / "latest") == "v3"


def test_two_namespaces_with_the_same_hostname_and_cache_path_give_one_writer(
        mlfs_factory, s3server, tmp_path):
    """Two containers: the same host name and the same cache path, each
    its own folder behind it.  The second must not take the first's live
    lease for its own crashed one."""
    a = s3mount(mlfs_factory, s3server, sub="a")
    assert writes(a, "a")
    other = tmp_path / "other-cache"
    other.mkdir()
    mnt = tmp_path / "ns-mnt"
    mnt.mkdir()
    argv = [str(MLFS), "-f", "-o", ",".join(
        [f"cache={a.cache}", f"endpoint={s3server['MLFS_S3_ENDPOINT']}",
         "path_style"]), f"s3://{s3server['MLFS_S3_BUCKET']}/{a.prefix}",
        str(mnt)]
    script = f"""
set -u
mount --bind {other} {a.cache} || exit 9
{' '.join(argv)} 2>{tmp_path}/ns.log & pid=$!
for i in $(seq 300); do mountpoint -q {mnt} && break; sleep 0.05; done
mkdir {mnt}/datasets/ns 2>/dev/null; echo "mkdir $?"
grep -E '^(lease|mount_id|mode) ' {mnt}/.mlfs/cache
fusermount3 -u {mnt}; wait $pid; echo "exit $?"
"""
    env = dict(os.environ, **s3server)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private",
                        "bash", "-c", script], capture_output=True,
                       text=True, env=env, timeout=120)
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out.get("exit") == "0", (r.stdout, r.stderr,
                                    (tmp_path / "ns.log").read_text())
    assert out["mkdir"] != "0", "the second namespace took the lease"
    assert (out["lease"], out["mode"]) == ("reader", "ro")
    assert out["mount_id"] != mount_id(a)
    assert lease_of(s3server, a.prefix)["owner"] == mount_id(a)
    assert writes(a, "a2")


# --- waits for the bucket (issue 21): interruptible, bounded, and a close
# never waits for it

PY = "/usr/bin/python3"
BLOB_OUTAGE = [{"match": "blobs/", "times": -1, "action": "status",
                "status": 503, "code": "SlowDown"}]
# An endpoint that takes requests and never answers (a blackholed route,
# a hung server): each try waits out the client's stall timeout
BLOB_HANG = [{"match": "blobs/", "times": -1, "action": "delay",
              "delay_ms": 30000}]


def proc_state(pid):
    """The state letter of /proc/<pid>/stat (R, S, D, Z...), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def blocked_child(code, *args):
    """A python child running code (argv[1:] = args), once it has
    blocked: asleep in the kernel, not finished."""
    p = subprocess.Popen([PY, "-c", code, *map(str, args)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(1.5)
    assert p.poll() is None, p.communicate()
    assert proc_state(p.pid) in ("S", "D")
    return p


def dies_promptly(p, sig, within=5.0):
    """Send sig to p; True if it ended within `within` seconds.  If not,
    its state (D: uninterruptible) is in the assertion's message."""
    t0 = time.monotonic()
    p.send_signal(sig)
    try:
        p.wait(timeout=within)
    except subprocess.TimeoutExpired:
        return False, proc_state(p.pid)
    return True, time.monotonic() - t0


FSYNC = ("import os, sys\n"
         "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
         "try:\n"
         "    os.fsync(fd)\n"
         "except OSError as e:\n"
         "    print(e.errno)\n"
         "    sys.exit(3)\n")


@FAULT_PROXY
def test_a_close_in_an_outage_does_not_wait_and_fsync_answers_sigkill(
        mlfs_factory, s3server):
    try:
        m = fault_mount(mlfs_factory, s3server, "w")
        d = m.mnt / "datasets" / "iris"
        d.mkdir()
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        fault(s3server, BLOB_HANG)
        # the close publishes from the outbox: asking the bucket whether
        # the blob is new is the export's business, not the writer's
        t0 = time.monotonic()
        (d / "data.csv").write_text(IRIS)
        assert time.monotonic() - t0 < 5, "the close waited for the bucket"
        assert (d / "v1" / "data.csv").read_text() == IRIS
        # fsync waits for the export, which cannot happen; SIGKILL ends
        # the wait at once (the daemon answers the kernel's interrupt)
        p = blocked_child(FSYNC, d / "v1" / "data.csv")
        ok, how = dies_promptly(p, signal.SIGKILL)
        assert ok, f"SIGKILL left the process in fsync (state {how})"
        assert p.returncode == -signal.SIGKILL
        # so does Ctrl-C on `echo sync > .mlfs/cache`
        p = blocked_child("import sys\nopen(sys.argv[1], 'w').write("
                          "'sync\\n')\n", m.mnt / ".mlfs" / "cache")
        ok, how = dies_promptly(p, signal.SIGINT)
        assert ok, f"Ctrl-C left the process in sync (state {how})"
        # the export is still queued, and goes once the bucket is back
        assert cache_stats(m)["exports_queued"] >= 1
        fault(s3server)
        p = subprocess.run([PY, "-c", FSYNC, str(d / "v1" / "data.csv")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert_blobs(s3server, m.prefix, IRIS.encode())
    finally:
        fault(s3server)


@FAULT_PROXY
def test_sync_timeout_bounds_fsync_and_sync_in_an_outage(mlfs_factory,
                                                         s3server):
    try:
        m = fault_mount(mlfs_factory, s3server, "st",
                        opts=["sync_timeout=2"])
        m.expect(r"not in the bucket after 2 s")
        d = m.mnt / "datasets" / "iris"
        d.mkdir()
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        fault(s3server, BLOB_OUTAGE)
        (d / "data.csv").write_text(IRIS)
        t0 = time.monotonic()
        p = subprocess.run([PY, "-c", FSYNC, str(d / "v1" / "data.csv")],
                           capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        assert p.returncode == 3 and p.stdout.strip() == \
            str(errno.ETIMEDOUT), p.stdout + p.stderr
        assert 1.5 < took < 10, took
        t0 = time.monotonic()
        # judged in the write, so the shell's own echo sees it
        p = subprocess.run(["bash", "-c", f"echo sync > {m.mnt}/.mlfs/cache"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, p.stderr
        assert "timed out" in p.stderr, p.stderr
        assert time.monotonic() - t0 < 10
        assert "not in the bucket after 2 s" in m.errors()
        fault(s3server)
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        assert_blobs(s3server, m.prefix, IRIS.encode())
    finally:
        fault(s3server)


def test_a_blob_the_bucket_has_is_not_uploaded_again(mlfs_factory, s3server):
    """The close no longer asks the bucket whether a blob is new; the
    export does, and skips the upload of content already there."""
    m = s3mount(mlfs_factory, s3server)
    (m.mnt / "datasets" / "a").mkdir()
    (m.mnt / "datasets" / "a" / "data.csv").write_text(IRIS)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    m.stop()
    shutil.rmtree(m.cache)          # a cache that never saw the blob
    m.start()
    b = m.mnt / "datasets" / "b"
    b.mkdir()
    (b / "data.csv").write_text(IRIS)
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    assert (b / "v1" / "data.csv").read_text() == IRIS
    gwlog = Path(s3server["MLFS_S3_DATA"]).parent / "gateway.log"
    key = f"/{s3server['MLFS_S3_BUCKET']}/{m.prefix}/{blob_key(IRIS.encode())}"
    puts = [ln for ln in gwlog.read_text().splitlines()
            if f'"PUT {key} ' in ln]
    assert len(puts) == 1, puts
    assert_blobs(s3server, m.prefix, IRIS.encode())


# --- no orphans (issue 21): multipart uploads a crash cut are aborted

def uploads_of(s3, prefix):
    """{upload id: key} of the multipart uploads in progress under
    prefix, as ListMultipartUploads answers through the gateway."""
    env = dict(os.environ, **s3)
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url",
                        s3["MLFS_S3_ENDPOINT"], "s3api",
                        "list-multipart-uploads", "--bucket",
                        s3["MLFS_S3_BUCKET"], "--prefix", prefix + "/",
                        "--output", "json"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout or "{}")
    return {u["UploadId"]: u["Key"] for u in out.get("Uploads", [])}


def upload_dir(s3, upload_id):
    """Where s3rver keeps an upload in progress and its parts."""
    return (Path(s3["MLFS_S3_DATA"]) / s3["MLFS_S3_BUCKET"] /
            "._S3rver_uploads" / upload_id)


@FAULT_PROXY
def test_a_multipart_upload_cut_by_a_crash_is_aborted_at_the_next_mount(
        mlfs_factory, s3server, tmp_path):
    try:
        m = fault_mount(mlfs_factory, s3server, "mp", opts=["gc_grace=1"])
        d = m.mnt / "datasets" / "big"
        d.mkdir()
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        row = ",".join(f"{i * 0.5:.1f}" for i in range(30)) + ",0\n"
        head = ",".join(f"x{i}" for i in range(30)) + ",label\n"
        big = tmp_path / "big.csv"      # 40 MiB: a multipart upload
        big.write_text(head + row * (40 * 2**20 // len(row)))
        # part 1 lands, parts 2 and 3 fail: the export keeps retrying
        fault(s3server, [{"match": f"partNumber={n}&", "times": -1,
                          "action": "status", "status": 503}
                         for n in (2, 3)])
        assert sh(f"cp {big} {d}/data.csv").returncode == 0
        deadline = time.monotonic() + 60
        while True:
            ups = uploads_of(s3server, m.prefix)
            if any((upload_dir(s3server, u) / "1").exists() for u in ups):
                break
            assert time.monotonic() < deadline, "no upload in progress"
            time.sleep(0.2)
        m.kill9()                       # in the middle of the upload
        fault(s3server)
        (cut,) = ups
        assert ups[cut] == f"{m.prefix}/{blob_key(big.read_bytes())}"
        time.sleep(2.5)                 # older than gc_grace
        m.start()
        os.listdir(m.mnt)   # served: the mount's sweep is done
        # the new writer aborted it (its parts gone from s3rver's disk)
        # and exported the blob again, completely
        assert "s3: aborted 1 multipart upload a crash left behind" in \
            m.stderr()
        assert cut not in uploads_of(s3server, m.prefix)
        assert not upload_dir(s3server, cut).exists()
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        assert uploads_of(s3server, m.prefix) == {}
        assert sh(f"cmp {big} {d}/v1/data.csv").returncode == 0
        assert blob_key(big.read_bytes()) in bucket_blobs(s3server, m.prefix)
    finally:
        fault(s3server)


def test_gc_aborts_old_multipart_uploads_but_not_young_ones(mlfs_factory,
                                                            s3server):
    prefix = "gu-" + uuid.uuid4().hex[:8]
    env = dict(os.environ, **s3server)

    def create(key):
        r = subprocess.run(["/usr/bin/aws", "--endpoint-url",
                            s3server["MLFS_S3_ENDPOINT"], "s3api",
                            "create-multipart-upload", "--bucket",
                            s3server["MLFS_S3_BUCKET"], "--key",
                            f"{prefix}/{key}", "--output", "json"],
                           capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["UploadId"]

    # another prefix's upload is not this mount's business; a dead
    # writer's upload, cut a moment ago
    other = f"gu-other-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(["/usr/bin/aws", "--endpoint-url",
                        s3server["MLFS_S3_ENDPOINT"], "s3api",
                        "create-multipart-upload", "--bucket",
                        s3server["MLFS_S3_BUCKET"], "--key", f"{other}/x",
                        "--output", "json"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    old = create("blobs/ab/abab")
    t0 = time.monotonic()
    grace = 10      # well above what a mount takes on a loaded machine
    # times are whole seconds: an upload begun in the second the mount
    # began counts as the mount's own, never aborted
    time.sleep(1.1)
    m = s3mount(mlfs_factory, s3server, prefix=prefix,
                opts=[f"gc_grace={grace}"])
    os.listdir(m.mnt)   # served: the mount's sweep is done
    assert time.monotonic() - t0 < grace - 1, "the mount was too slow"
    # younger than the grace at mount: spared (a stalled writer's upload
    # may still complete)
    assert old in uploads_of(s3server, prefix)
    time.sleep(max(0, t0 + grace + 1.5 - time.monotonic()))
    (m.mnt / ".mlfs" / "cache").write_text("gc\n")
    assert uploads_of(s3server, prefix) == {}
    assert not upload_dir(s3server, old).exists()
    assert len(uploads_of(s3server, other)) == 1


# --- readers are not cut off (issue 21): rmdir deletes the bucket's
# objects only after gc_grace

def in_bucket(s3, prefix, key):
    """Does the bucket hold prefix/key?  A HEAD straight to s3rver (it
    serves unsigned requests): one request, no race with a deletion."""
    import urllib.error
    import urllib.request
    url = (f"{s3['MLFS_S3_DIRECT_ENDPOINT']}/{s3['MLFS_S3_BUCKET']}/"
           f"{prefix}/{key}")
    try:
        with urllib.request.urlopen(urllib.request.Request(
                url, method="HEAD"), timeout=30):
            return True
    except urllib.error.HTTPError as e:
        assert e.code == 404, e
        return False


def test_a_reader_keeps_reading_a_removed_version_until_gc_grace(
        mlfs_factory, s3server, tmp_path):
    grace = 10
    m = s3mount(mlfs_factory, s3server, opts=[f"gc_grace={grace}"])
    d = m.mnt / "datasets" / "big"
    d.mkdir()
    row = ",".join(f"{i * 0.25:.2f}" for i in range(30)) + ",1\n"
    text = (",".join(f"x{i}" for i in range(30)) + ",label\n" +
            row * (20 * 2**20 // len(row))).encode()   # three 8 MiB blocks
    (d / "data.csv").write_bytes(text)
    (d / "data.csv").write_bytes(IRIS.encode())
    (m.mnt / ".mlfs" / "cache").write_text("sync\n")
    key = blob_key(text)
    # the reader's bytes come from the bucket
    (m.mnt / ".mlfs" / "cache").write_text(
        "release datasets/big/v1/data.csv\n")
    fd = os.open(d / "v1" / "data.csv", os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == text[:4096]
        t0 = time.monotonic()
        (d / "v1").rmdir()
        # gone from the namespace at once, here and in the bucket's
        # manifests
        assert "v1" not in os.listdir(d)
        assert not (d / "v1").exists()
        # but the open file reads on: the blob stays for the grace (read
        # first: the aws CLI below takes seconds on a loaded machine)
        off = 12 * 2**20
        assert os.pread(fd, 2**20, off) == text[off:off + 2**20]
        assert time.monotonic() - t0 < grace, "the test was too slow"
        assert in_bucket(s3server, m.prefix, key)
        ls = aws(s3server, "ls", "--recursive",
                 f"s3://{s3server['MLFS_S3_BUCKET']}/{m.prefix}/datasets/")
        assert "datasets/big/v1.json" not in ls.stdout
        # then it goes, and a read of the open file is stale, not ENOENT
        deadline = t0 + grace + 20
        while in_bucket(s3server, m.prefix, key):
            assert time.monotonic() < deadline, "the blob never went"
            time.sleep(0.5)
        assert time.monotonic() - t0 >= grace - 1
        with pytest.raises(OSError) as e:
            os.pread(fd, 4096, 19 * 2**20)
        assert e.value.errno == errno.ESTALE
    finally:
        os.close(fd)
    assert (d / "v2" / "data.csv").read_text() == IRIS
    assert_blobs(s3server, m.prefix, IRIS.encode())


def test_schedule_imports_an_s3_source_again_by_etag(mlfs_factory, s3server,
                                                     tmp_path):
    b = s3server["MLFS_S3_BUCKET"]
    url = f"s3://{b}/sched/{uuid.uuid4().hex[:8]}/x.csv"

    def put(text):
        (tmp_path / "x.csv").write_text(text)
        assert aws(s3server, "cp", str(tmp_path / "x.csv"),
                   url).returncode == 0

    put("a\n1\n")
    m = mlfs_factory(opts=[f"endpoint={s3server['MLFS_S3_ENDPOINT']}",
                           "path_style", "import_ttl=3600"], env=s3server)
    d = m.mnt / "datasets" / "sx"
    d.mkdir()
    (d / "source").write_text(url + "\n")
    (d / "schedule").write_text("1s\n")
    put("a\n1\n")                 # the same bytes again: the same ETag
    time.sleep(2.5)
    assert sorted(p.name for p in d.glob("v*")) == ["v1"]
    put("a\n2\n")
    deadline = time.monotonic() + 20
    while not (d / "v2").exists():
        assert time.monotonic() < deadline, "no v2"
        time.sleep(0.2)
    lin = json.loads((d / "v2" / "lineage").read_text())
    assert lin["made_by"] == "schedule" and lin["detail"] == url
    assert (d / "v2" / "data.csv").read_text() == "a\n2\n"
