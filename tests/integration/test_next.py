"""datasets/<d>/v<n>/next and datasets/<d>/next: a read that blocks until
a newer version exists, then names the oldest one, so that a pipeline
loop misses no version (inotify on a FUSE mount does not see versions
the daemon publishes)."""
import os
import signal
import subprocess
import time

from conftest import as_user


def publish(d, n):
    (d / "data.csv").write_text(f"a,b\n{n},{n}\n")


def test_a_loop_sees_every_version_even_three_in_one_body(mlfs):
    d = mlfs.mnt / "datasets/d"
    d.mkdir()
    publish(d, 1)
    # the loop of the examples; its first body publishes three versions
    script = f"""
        v=$(readlink {d}/latest)
        n=0
        while v=$(cat {d}/$v/next); do
            echo "$v"
            n=$((n + 1))
            if [ $n = 1 ]; then
                for i in 10 11 12; do
                    printf 'a,b\\n%s,%s\\n' $i $i > {d}/data.csv
                done
            fi
            [ $n = 4 ] && break
        done
    """
    p = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE,
                         text=True)
    time.sleep(0.5)
    assert p.poll() is None                 # waiting: no v2 yet
    publish(d, 2)
    out, _ = p.communicate(timeout=30)
    assert out.split() == ["v2", "v3", "v4", "v5"]
    # an old version's next is the oldest newer one, at once
    assert (d / "v1/next").read_text() == "v2\n"
    assert (d / "v3/next").read_text() == "v4\n"
    # a removed version is skipped
    os.rmdir(d / "v2")
    assert (d / "v1/next").read_text() == "v3\n"


def test_next_is_interruptible_ends_at_rmdir_and_keeps_permissions(
        mlfs_factory):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    d = mlfs.mnt / "datasets/d"
    d.mkdir()
    publish(d, 1)
    # Ctrl-C ends the wait at once
    p = subprocess.Popen(["cat", str(d / "next")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert p.poll() is None
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.wait(timeout=10)
    assert time.monotonic() - t0 < 5
    # a private dataset's next is its owner's
    os.chmod(d, 0o700)
    r = as_user(["cat", str(d / "v1/next")], timeout=5)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    os.chmod(d, 0o755)
    r = as_user(["bash", "-c", f"echo x > {d}/next"], timeout=5)
    assert r.returncode != 0
    # removing the dataset answers its waiting readers with end of file
    p = subprocess.Popen(["cat", str(d / "next")], stdout=subprocess.PIPE,
                         text=True)
    time.sleep(0.5)
    os.rmdir(d)
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 0 and out == ""
    assert not (mlfs.mnt / "datasets/d").exists()
