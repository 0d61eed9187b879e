"""Integrity (issue 10): a handle whose write failed never publishes."""
import errno
import os
import subprocess

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
