"""mlfs on an S3 bucket (s3rver behind a SigV4-verifying gateway), with the
block cache in front: datasets, training and predict, what lands in the
bucket, a second read-only mount, bad credentials, and the cache
controls."""
import errno
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import MLFS, ROOT

IRIS = (ROOT / "examples" / "data" / "iris.csv").read_text()


def s3mount(factory, s3, sub="m", prefix=None, opts=()):
    prefix = prefix or "t-" + uuid.uuid4().hex[:8]
    url = f"s3://{s3['MLFS_S3_BUCKET']}/{prefix}"
    o = [f"endpoint={s3['MLFS_S3_ENDPOINT']}", "path_style", *opts]
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
    blob = aws(s3server, "cp", f"s3://{s3server['MLFS_S3_BUCKET']}/"
               f"{m.prefix}/{man['blob']}", "-")
    assert blob.stdout == IRIS
    assert os.getxattr(d / "v1" / "data.csv", "user.mlfs.state") in (
        b"synced", b"cached")
    (m.mnt / "train" / "j.json").write_text(
        '{"dataset": "iris", "algorithm": "logistic", "model": "iris"}')
    assert (m.mnt / "jobs" / "j" / "wait").read_text() == "succeeded\n"
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
