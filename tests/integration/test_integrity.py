"""Integrity (issue 10): a handle whose write failed never publishes."""
import errno
import os
import subprocess
import sys

import pytest

from conftest import ROOT, wait_job

IRIS = (ROOT / "examples" / "data" / "iris.csv").read_text()


def versions(d):
    return sorted(p for p in os.listdir(d) if p[1:].isdigit())


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs to hold a store: a disk that fills."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs",
                        str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    yield d
    subprocess.run(["umount", "-l", str(d)])


def test_a_write_that_failed_never_publishes_even_when_space_returns(
        mlfs_factory, small_disk):
    store = small_disk / "store"
    store.mkdir()
    m = mlfs_factory(url=str(store))
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)              # v1
    filler = small_disk / "filler"
    fd = os.open(d / "data.csv", os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, IRIS.encode())
        # the disk fills (by someone else): the next write fails
        with open(filler, "wb") as f:
            try:
                f.write(b"x" * (4 << 20))
            except OSError as e:
                assert e.errno == errno.ENOSPC
        with pytest.raises(OSError) as e:
            for _ in range(64):
                os.write(fd, IRIS.encode()[len("sepal"):] * 8)
        assert e.value.errno == errno.ENOSPC
        filler.unlink()                            # space comes back
        with pytest.raises(OSError) as e:          # still failed
            os.write(fd, b"5.0,3.6,1.4,0.2,setosa\n")
        assert e.value.errno == errno.ENOSPC
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
    assert e.value.errno == errno.ENOSPC
    assert versions(d) == ["v1"]
    assert (d / "data.csv").read_text() == IRIS


def test_a_write_past_max_file_fails_the_close_too(mlfs_factory):
    m = mlfs_factory(opts=["max_file=64K"])
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    fd = os.open(d / "data.csv", os.O_WRONLY | os.O_TRUNC)
    os.write(fd, IRIS.encode())
    with pytest.raises(OSError) as e:
        os.pwrite(fd, b"1,2,3,4,setosa\n", 1 << 20)
    assert e.value.errno == errno.EFBIG
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EFBIG
    assert versions(d) == []


@pytest.mark.parametrize("cut", ['"l2": 0.', '"stratify": tru', 'ir\\u00',
                                 '"l2": 0.001e', '"seed": -'])
def test_a_spec_written_in_pieces_is_not_refused_mid_token(mlfs, cut):
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    spec = ('{"dataset": "iris", "algorithm": "logistic", '
            '"params": {"l2": 0.001e0}, "model": "ir\\u0069s", '
            '"split": {"stratify": true, "seed": -0}}')
    at = spec.index(cut) + len(cut)
    fd = os.open(mlfs.mnt / "train" / "j.json",
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        assert os.write(fd, spec[:at].encode()) == at
        assert os.write(fd, spec[at:].encode()) == len(spec) - at
    finally:
        os.close(fd)
    assert wait_job(mlfs.mnt, "j") == "succeeded\n"
    assert os.listdir(mlfs.mnt / "models") == ["iris"]


ROW = b"5.0,3.6,1.4,0.2,setosa\n"


def test_a_write_handle_behaves_like_a_local_file(mlfs):
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    base = len(IRIS)
    # another process, started before the handle exists (a child forked
    # after would inherit it, and its exec's close would flush: publish)
    other = subprocess.Popen(
        [sys.executable, "-c", "import os, sys\n"
         "for p in sys.stdin:\n"
         "    p = p.strip()\n"
         "    print(os.stat(p).st_size, len(open(p, 'rb').read()),"
         " flush=True)\n"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    fd = os.open(d / "data.csv", os.O_RDWR)
    try:
        for i in range(3):                     # lseek(END) + write appends
            assert os.lseek(fd, 0, os.SEEK_END) == base + i * len(ROW)
            os.write(fd, ROW)
        assert os.fstat(fd).st_size == base + 3 * len(ROW)   # no handle
        assert os.pread(fd, 100, base) == ROW * 3            # past old end
        # the other process still sees the published version
        other.stdin.write(f"{d / 'data.csv'}\n")
        other.stdin.flush()
        assert other.stdout.readline() == f"{base} {base}\n"
        other.stdin.close()
        assert other.wait(timeout=30) == 0
    finally:
        os.close(fd)
    assert (d / "data.csv").read_bytes() == IRIS.encode() + ROW * 3
    fd = os.open(d / "data.csv", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, ROW)
        assert os.fstat(fd).st_size == base + 4 * len(ROW)
    finally:
        os.close(fd)
    assert (d / "latest" / "data.csv").read_bytes() == \
        IRIS.encode() + ROW * 4


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_operations_match_a_shadow_file(mlfs, seed):
    """fsx-style: random pwrite, ftruncate, pread, fstat and lseek on one
    handle, each checked against a local shadow file; then the published
    version is the shadow, byte for byte."""
    import random
    rnd = random.Random(seed)
    d = mlfs.mnt / "datasets" / "r"
    d.mkdir()
    (d / "data.csv").write_text("a\n1\n")
    shadow = bytearray(b"a\n1\n")
    fd = os.open(d / "data.csv", os.O_RDWR)
    bad = []
    try:
        for op in range(2500):
            k = rnd.randrange(6)
            if k == 0:                          # pwrite
                off = rnd.randrange(len(shadow) + 64)
                data = bytes(rnd.choice(b"0123456789\n")
                             for _ in range(rnd.randrange(1, 300)))
                os.pwrite(fd, data, off)
                if off > len(shadow):
                    shadow.extend(b"\0" * (off - len(shadow)))
                shadow[off:off + len(data)] = data
            elif k == 1:                        # ftruncate
                n = rnd.randrange(len(shadow) + 64)
                os.ftruncate(fd, n)
                if n < len(shadow):
                    del shadow[n:]
                else:
                    shadow.extend(b"\0" * (n - len(shadow)))
            elif k == 2:                        # pread
                off = rnd.randrange(len(shadow) + 8)
                n = rnd.randrange(1, 400)
                if os.pread(fd, n, off) != bytes(shadow[off:off + n]):
                    bad.append((op, "pread", off, n))
            elif k == 3:                        # fstat
                if os.fstat(fd).st_size != len(shadow):
                    bad.append((op, "fstat"))
            elif k == 4:                        # lseek(SEEK_END)
                if os.lseek(fd, 0, os.SEEK_END) != len(shadow):
                    bad.append((op, "lseek"))
            else:                               # write at SEEK_END
                os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, b"7\n")
                shadow.extend(b"7\n")
        # make it a CSV: a header, no NUL, a last row
        fix = bytes(shadow).replace(b"\0", b"0")
        fix = b"a\n" + fix[2:] if len(fix) >= 2 else b"a\n"
        fix += b"1\n"
        os.pwrite(fd, fix, 0)
        shadow[:] = fix
    finally:
        os.close(fd)
    assert bad == []
    assert (d / "latest" / "data.csv").read_bytes() == bytes(shadow)


def test_concurrent_writers_and_readers_see_only_whole_versions(mlfs):
    import threading
    d = mlfs.mnt / "datasets" / "c"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    texts = [IRIS + ROW.decode() * (i + 1) for i in range(60)]
    valid = {t.encode() for t in texts} | {IRIS.encode()}
    errors, torn = [], []
    stop = threading.Event()

    def writer(k):
        for i in range(k, 60, 3):
            try:
                with open(d / "data.csv", "w") as f:
                    f.write(texts[i])
            except OSError as e:
                errors.append((i, e))

    def reader():
        while not stop.is_set():
            r = subprocess.run(["cat", str(d / "data.csv")],
                               capture_output=True, timeout=30)
            if r.returncode != 0 or r.stdout not in valid:
                torn.append(len(r.stdout))

    rs = [threading.Thread(target=reader) for _ in range(2)]
    ws = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in rs + ws:
        t.start()
    for t in ws:
        t.join(timeout=120)
    stop.set()
    for t in rs:
        t.join(timeout=60)
    assert errors == []
    assert torn == []
    assert "binary data" not in mlfs.errors()


def test_a_row_over_the_limit_gets_one_error_and_the_stream_stays_aligned(
        mlfs):
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (mlfs.mnt / "train" / "j.json").write_text(
        '{"dataset": "iris", "algorithm": "logistic", "model": "iris"}')
    assert wait_job(mlfs.mnt, "j") == "succeeded\n"
    fd = os.open(mlfs.mnt / "models/iris/predict", os.O_RDWR)
    failed = 0
    try:
        os.write(fd, b"5.1,3.5,1.4,0.2\n")
        chunk = b"1.0," * (64 << 10)            # 256 KiB, no newline
        for _ in range(8):                      # 2 MiB: over the 1 MiB cap
            try:
                os.write(fd, chunk)
            except OSError as e:
                assert e.errno == errno.E2BIG
                failed += 1
        os.write(fd, b"1.0\n6.7,3.0,5.2,2.3\n")
        out = b""
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            out += b
    finally:
        os.close(fd)
    lines = out.decode().splitlines()
    assert failed == 1
    assert len(lines) == 3, lines
    assert lines[0].startswith("setosa,")
    assert lines[1].startswith("error: row longer than")
    assert lines[2].startswith("virginica,")


def test_an_rmdir_cut_short_by_a_crash_leaves_nothing_to_adopt(mlfs_factory):
    from conftest import as_user
    m = mlfs_factory(opts=["allow_other"], public=True)
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (d / "data.csv").write_text(IRIS + ROW.decode())
    m.kill9()
    # a crash in rmdir after the record went, before the manifests did
    sdir = m.store / "datasets" / "iris"
    records = [p for p in sdir.iterdir()
               if p.is_file() and not p.name[1:2].isdigit()]
    assert len(records) == 1, list(sdir.iterdir())
    records[0].unlink()
    m.start()
    assert "iris" not in os.listdir(m.mnt / "datasets")
    # the writer's mount deleted what the rmdir left
    assert not sdir.exists() or not any(sdir.iterdir())
    # another user makes a dataset of that name: it starts empty ...
    r = as_user(["mkdir", str(d)])
    assert r.returncode == 0, r.stderr
    assert versions(d) == []
    # ... and stays so after another crash and a rebuild
    m.kill9()
    m.start()
    assert versions(d) == []
    assert os.stat(d).st_uid == 65534
    r = as_user(["bash", "-c", f"printf 'a,b\\n1,2\\n' > {d}/data.csv; "
                                f"echo 3,4 >> {d}/data.csv"])
    assert r.returncode == 0, r.stderr
    assert versions(d) == ["v1", "v2"], m.errors()
    assert (d / "data.csv").read_text() == "a,b\n1,2\n3,4\n"
    m.kill9()
    m.start()
    assert versions(d) == ["v1", "v2"]
    assert (d / "v1" / "data.csv").read_text() == "a,b\n1,2\n"


def test_a_mkdir_that_fails_leaves_no_record(mlfs_factory, small_disk):
    store = small_disk / "store"
    store.mkdir()
    m = mlfs_factory(url=str(store))
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    with pytest.raises(OSError) as e:
        (m.mnt / "datasets" / "full").mkdir()
    assert e.value.errno == errno.ENOSPC
    filler.unlink()
    assert os.listdir(m.mnt / "datasets") == []
    m.kill9()                       # and a rebuild finds nothing either
    m.start()
    assert os.listdir(m.mnt / "datasets") == []
    (m.mnt / "datasets" / "full").mkdir()
    assert versions(m.mnt / "datasets" / "full") == []


@pytest.mark.parametrize("field,value", [("memory", "1e400"),
                                         ("timeout", "1e400"),
                                         ("memory", "nan"),
                                         ("timeout", "-inf"),
                                         ("timeout", "0")])
def test_unbounded_limits_are_refused_at_the_write(mlfs, field, value):
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    mlfs.expect("rejected")
    spec = ('{"dataset": "iris", "algorithm": "logistic", "%s": %s}'
            % (field, value))
    r = subprocess.run(["bash", "-c",
                        f"echo '{spec}' > {mlfs.mnt}/train/j.json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert os.listdir(mlfs.mnt / "jobs") == []


def test_a_timeout_below_the_runners_tick_is_enforced(mlfs):
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (mlfs.mnt / "train" / "j.json").write_text(
        '{"dataset": "iris", "algorithm": "mlp", "timeout": 0.001, '
        '"params": {"epochs": 100000, "early_stopping": false}}')
    assert wait_job(mlfs.mnt, "j", 60) == "failed: timed out after 0.001 s\n"
