"""Collection through a real mount: landing directories followed with
inotify (datasets/<d>/watch) and sources imported again on a schedule
(datasets/<d>/schedule)."""
import json
import os
import threading
import time

import pytest

from conftest import as_user
from test_train import sh


def wait_for(pred, timeout=20, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out")


def latest(d):
    try:
        return int(os.readlink(d / "latest")[1:])
    except FileNotFoundError:
        return 0


def land(tmp, landing, name, text):
    """A file moved in whole, as a pipeline drops one."""
    part = tmp / f".part-{name}"
    part.write_text(text)
    os.rename(part, landing / name)


def test_watch_takes_files_moved_in_or_closed_and_left(mlfs, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "before.csv").write_text("a,b\n0,0\n")
    d = mlfs.mnt / "datasets/events"
    d.mkdir()
    r = sh(f"echo {landing} > {d}/watch")
    assert r.returncode == 0, r.stderr
    assert (d / "watch").read_text() == f"{landing}\n"
    time.sleep(0.3)
    assert latest(d) == 0            # what was there before is not taken
    # moved in: taken at once
    land(tmp_path, landing, "one.csv", "a,b\n1,1\n")
    wait_for(lambda: latest(d) == 1)
    assert (d / "v1/data.csv").read_text() == "a,b\n1,1\n"
    lineage = json.loads((d / "v1/lineage").read_text())
    assert lineage["made_by"] == "watch"
    assert lineage["detail"] == f"{landing}/one.csv"
    # written in several opens: taken once, whole, 2 s after the last
    f = landing / "two.csv"
    f.write_text("a,b\n2,2\n")
    time.sleep(1.2)
    with open(f, "a") as g:
        g.write("3,3\n")
    t0 = time.monotonic()
    wait_for(lambda: latest(d) == 2)
    assert time.monotonic() - t0 >= 1.5
    assert (d / "v2/data.csv").read_text() == "a,b\n2,2\n3,3\n"
    # dot files wait; a bad file is refused, named, and changes nothing
    (landing / ".hidden.csv").write_text("a,b\n9,9\n")
    land(tmp_path, landing, "bad.csv", 'a,b\n1,"x\n')
    wait_for(lambda: "bad.csv:2:3: unterminated quoted field" in
             mlfs.errors())
    assert "datasets/events/watch: bad.csv:2:3:" in mlfs.errors()
    time.sleep(0.3)
    assert latest(d) == 2
    # an empty line stops it
    r = sh(f"echo > {d}/watch")
    assert r.returncode == 0, r.stderr
    assert (d / "watch").read_text() == ""
    land(tmp_path, landing, "three.csv", "a,b\n4,4\n")
    time.sleep(0.5)
    assert latest(d) == 2


def test_watch_appends_rows_to_the_latest(mlfs, tmp_path):
    landing = tmp_path / "in"
    landing.mkdir()
    d = mlfs.mnt / "datasets/log"
    d.mkdir()
    (d / "data.csv").write_text("t,v\n1,a\n")
    r = sh(f"cd {tmp_path} && printf 'append\\nin\\n' > {d}/watch")
    assert r.returncode == 0, r.stderr    # relative to the writer's cwd
    assert (d / "watch").read_text() == f"append\n{landing}\n"
    land(tmp_path, landing, "b.csv", "t,v\n2,b\n3,c\n")
    wait_for(lambda: latest(d) == 2)
    land(tmp_path, landing, "c.csv", "t,v\n4,d\n")
    wait_for(lambda: latest(d) == 3)
    assert (d / "latest/data.csv").read_text() == \
        "t,v\n1,a\n2,b\n3,c\n4,d\n"
    land(tmp_path, landing, "d.csv", "x,y\n5,e\n")
    wait_for(lambda: "d.csv:1:1: the header is not v3's" in mlfs.errors())
    assert latest(d) == 3


BAD_WATCHES = [
    ("/nonexistent/dir\n", "No such file or directory",
     '"/nonexistent/dir": No such file or directory'),
    ("{file}\n", "Not a directory", "file.csv\": Not a directory"),
    ("sideways\n{dir}\n", "Invalid argument",
     '"sideways": the mode is append or replace'),
    ("append\n{dir}\n{dir}\n", "Invalid argument",
     "at most two lines: a mode and a path"),
    ("{mnt}/datasets\n", "Invalid argument",
     "on a FUSE filesystem, which inotify cannot follow"),
]


def test_a_dataset_made_again_gets_nothing_of_the_old_watch(mlfs,
                                                          tmp_path):
    landing = tmp_path / "old"
    landing.mkdir()
    d = mlfs.mnt / "datasets/again"
    d.mkdir()
    r = sh(f"echo {landing} > {d}/watch")
    assert r.returncode == 0, r.stderr
    land(tmp_path, landing, "a.csv", "a\n1\n")
    wait_for(lambda: latest(d) == 1)
    r = sh(f"rmdir {d} && mkdir {d}")
    assert r.returncode == 0, r.stderr
    assert (d / "watch").read_text() == ""
    land(tmp_path, landing, "b.csv", "a\n2\n")
    time.sleep(1)
    assert latest(d) == 0
    # and the old watch's record of files went with it
    assert not (mlfs.store / "datasets/again/landing.seen").exists()


def test_bad_watches_change_nothing(mlfs, tmp_path):
    d = mlfs.mnt / "datasets/w"
    d.mkdir()
    f = tmp_path / "file.csv"
    f.write_text("a\n1\n")
    for text, err, msg in BAD_WATCHES:
        text = text.format(file=f, dir=tmp_path, mnt=mlfs.mnt)
        r = sh(f"printf '%s' '{text}' > {d}/watch")
        assert r.returncode != 0 and err in r.stderr, (text, r.stderr)
        assert msg in mlfs.errors(), text
        assert (d / "watch").read_text() == ""


def test_watch_is_the_writers_and_reads_as_the_writer(mlfs_factory,
                                                       tmp_path):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    base = mlfs.tmp / "host"
    base.mkdir()
    os.chmod(base, 0o755)
    private = base / "private"
    private.mkdir(mode=0o700)
    landing = base / "landing"
    landing.mkdir()
    os.chown(landing, 65534, 65534)
    d = mlfs.mnt / "datasets/rootds"
    d.mkdir()
    r = as_user(["bash", "-c", f"echo {landing} > {d}/watch"])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    mine = mlfs.mnt / "datasets/mine"
    r = as_user(["mkdir", str(mine)])
    assert r.returncode == 0, r.stderr
    # a directory the writer cannot read is refused
    r = as_user(["bash", "-c", f"echo {private} > {mine}/watch"])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_user(["bash", "-c", f"echo {landing} > {mine}/watch"])
    assert r.returncode == 0, r.stderr
    # a file in it the writer cannot read, or a link to one, is not taken
    secret = private / "secret.csv"
    secret.write_text("s\n42\n")
    os.symlink(secret, landing / "link.csv")
    (landing / "root.csv").write_text("s\n43\n")
    os.chmod(landing / "root.csv", 0o600)
    os.rename(landing / "root.csv", landing / "root2.csv")
    wait_for(lambda: "root2.csv: Permission denied" in
             as_user(["cat", f"{mlfs.mnt}/.mlfs/errors"]).stdout)
    assert latest(mine) == 0
    r = as_user(["bash", "-c", f"printf 's\\n7\\n' > {landing}/.t && "
                 f"mv {landing}/.t {landing}/ok.csv"])
    assert r.returncode == 0, r.stderr
    wait_for(lambda: latest(mine) == 1)
    assert (mine / "v1/data.csv").read_text() == "s\n7\n"
    assert json.loads((mine / "v1/lineage").read_text())["uid"] == 65534


def test_watch_survives_a_crash_in_a_burst_and_loses_nothing(mlfs,
                                                              tmp_path):
    landing = tmp_path / "burst"
    landing.mkdir()
    d = mlfs.mnt / "datasets/burst"
    d.mkdir()
    r = sh(f"echo {landing} > {d}/watch")
    assert r.returncode == 0, r.stderr
    n = 60
    stop = threading.Event()

    def producer():
        for i in range(n):
            land(tmp_path, landing, f"f{i:03}.csv", f"i,x\n{i},{i * i}\n")
            time.sleep(0.02)
        stop.set()

    t = threading.Thread(target=producer)
    t.start()
    wait_for(lambda: latest(d) >= 10, step=0.01)
    mlfs.kill9()           # mid-burst: files keep arriving while down
    time.sleep(0.3)
    mlfs.start()
    t.join()
    assert stop.is_set()

    def taken():
        out = []
        for v in range(1, latest(d) + 1):
            lin = json.loads((d / f"v{v}/lineage").read_text())
            out.append(os.path.basename(lin["detail"]))
        return out

    wait_for(lambda: len(taken()) >= n, timeout=60, step=0.2)
    time.sleep(2.5)        # nothing more comes: none twice
    names = taken()
    assert sorted(names) == [f"f{i:03}.csv" for i in range(n)]
    for v in range(1, latest(d) + 1):
        i = int(names[v - 1][1:4])
        assert (d / f"v{v}/data.csv").read_text() == f"i,x\n{i},{i * i}\n"


def test_schedule_imports_the_source_again_when_it_changed(mlfs, tmp_path):
    src = tmp_path / "src.csv"
    src.write_text("a\n1\n")
    d = mlfs.mnt / "datasets/sched"
    d.mkdir()
    r = sh(f"echo 1s > {d}/schedule")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert "no source to import again" in mlfs.errors()
    r = sh(f"cd {tmp_path} && echo src.csv > {d}/source")
    assert r.returncode == 0, r.stderr
    for bad in ["0s", "5x", "-3", "1y", "400d", "1s\\n2s"]:
        r = sh(f"printf -- '{bad}\\n' > {d}/schedule")
        assert r.returncode != 0 and "Invalid argument" in r.stderr, bad
    assert (d / "schedule").read_text() == ""
    r = sh(f"echo 1s > {d}/schedule")
    assert r.returncode == 0, r.stderr
    assert (d / "schedule").read_text() == "1s\n"
    time.sleep(2.5)
    assert latest(d) == 1                 # unchanged: no version
    src.write_text("a\n1\n2\n")
    wait_for(lambda: latest(d) == 2, timeout=5)
    lin = json.loads((d / "v2/lineage").read_text())
    assert lin["made_by"] == "schedule" and lin["detail"] == str(src)
    # it is kept with the dataset: a remount follows it
    mlfs.restart()
    assert (d / "schedule").read_text() == "1s\n"
    src.write_text("a\n3\n")
    wait_for(lambda: latest(d) == 3, timeout=5)
    r = sh(f"echo > {d}/schedule")
    assert r.returncode == 0, r.stderr
    src.write_text("a\n4\n")
    time.sleep(2.2)
    assert latest(d) == 3


def test_read_only_mount_follows_nothing(mlfs_factory, tmp_path):
    m = mlfs_factory()
    landing = tmp_path / "ro-landing"
    landing.mkdir()
    d = m.mnt / "datasets/ro"
    d.mkdir()
    r = sh(f"echo {landing} > {d}/watch")
    assert r.returncode == 0, r.stderr
    m.stop()
    m.opts.append("ro")
    m.start()
    land(tmp_path, landing, "x.csv", "a\n1\n")
    time.sleep(0.5)
    assert latest(d) == 0
    assert (d / "watch").read_text() == f"{landing}\n"
