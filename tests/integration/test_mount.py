"""The daemon and its command line: mounting, options, failures."""
import errno
import mmap
import os
import signal
import subprocess
import time

from conftest import BUILD, MLFS, NOBODY, Mount, is_mounted


def run(*argv, timeout=15):
    return subprocess.run([str(MLFS), *argv], capture_output=True,
                          text=True, timeout=timeout)


def wait_mount(mnt, mounted):
    """Wait up to 10 s for mnt to be (or no longer be) mounted."""
    deadline = time.monotonic() + 10
    while is_mounted(mnt) != mounted and time.monotonic() < deadline:
        time.sleep(0.05)
    return is_mounted(mnt) == mounted


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("mlfs ")
    r = run("--help")
    assert r.returncode == 0 and "STORE MOUNTPOINT" in r.stdout


def test_missing_store_is_one_line_error(tmp_path):
    (tmp_path / "mnt").mkdir()
    r = run(str(tmp_path / "nope"), str(tmp_path / "mnt"))
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0
    assert "nope" in r.stderr and "No such file" in r.stderr


def test_store_not_a_directory(tmp_path):
    (tmp_path / "mnt").mkdir()
    (tmp_path / "file").write_text("x")
    r = run(str(tmp_path / "file"), str(tmp_path / "mnt"))
    assert r.returncode != 0 and "Not a directory" in r.stderr


def test_unwritable_store(tmp_path):
    (tmp_path / "mnt").mkdir()
    (tmp_path / "ro").mkdir()
    # root ignores mode bits: make it unwritable for real with a read-only
    # bind is not possible here, so check as an unprivileged user
    os.chmod(tmp_path, 0o755)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", str(MLFS), str(tmp_path / "ro"),
                        str(tmp_path / "mnt")],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode != 0
    assert "store" in r.stderr and r.stderr.count("\n") == 1


def test_missing_mountpoint(tmp_path):
    (tmp_path / "store").mkdir()
    r = run(str(tmp_path / "store"), str(tmp_path / "nomnt"))
    assert r.returncode != 0 and "mountpoint" in r.stderr


def test_busy_mountpoint_is_refused(mlfs, tmp_path):
    other = tmp_path / "store2"
    other.mkdir()
    r = run(str(other), str(mlfs.mnt))
    assert r.returncode != 0
    assert "busy" in r.stderr
    # the first mount is untouched
    assert (mlfs.mnt / "README").read_text().startswith("mlfs")


def test_unknown_store_format_is_refused(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "mnt").mkdir()
    (tmp_path / "store" / "mlfs-format").write_text("9.0\n")
    r = run(str(tmp_path / "store"), str(tmp_path / "mnt"))
    assert r.returncode != 0 and "format" in r.stderr


def test_daemonizes_and_unmounts_with_fusermount(tmp_path):
    m = Mount(tmp_path)
    r = subprocess.run([str(MLFS), "-o", "cache=" + str(m.cache),
                        str(m.store), str(m.mnt)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        assert wait_mount(m.mnt, True)
        assert (m.mnt / ".mlfs" / "version").read_text().startswith("mlfs")
    finally:
        subprocess.run(["fusermount3", "-u", str(m.mnt)])
    assert wait_mount(m.mnt, False)


def test_a_plugin_directory_that_is_a_file_is_refused(tmp_path):
    m = Mount(tmp_path)
    try:
        r = run("-f", "-o", f"cache={m.cache},plugins=/etc/passwd",
                str(m.store), str(m.mnt), timeout=5)
    finally:
        # a regression mounts (and, killed at the timeout, leaves it dead)
        if is_mounted(m.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(m.mnt)])
    assert r.returncode != 0
    assert "plugins /etc/passwd: Not a directory" in r.stderr, r.stderr


def test_an_empty_plugin_directory_option_loads_none(mlfs_factory,
                                                     tmp_path, monkeypatch):
    # not the working directory's .so files (realpath("") fails)
    so = BUILD / "plugins" / "train" / "logistic.so"
    (tmp_path / "logistic.so").write_bytes(so.read_bytes())
    monkeypatch.chdir(tmp_path)
    m = mlfs_factory(opts=["plugins="])
    assert (m.mnt / ".mlfs" / "plugins").read_text() == ""


def test_a_relative_plugin_directory_is_the_callers(tmp_path):
    """A daemon's working directory becomes /, and its plugins load on a
    thread after that: -o plugins=rel is still rel under the directory
    mlfs was started in."""
    m = Mount(tmp_path)
    (tmp_path / "rel").mkdir()
    so = BUILD / "plugins" / "train" / "logistic.so"
    (tmp_path / "rel" / "logistic.so").write_bytes(so.read_bytes())
    r = subprocess.run([str(MLFS), "-o", f"cache={m.cache},plugins=rel",
                        str(m.store), str(m.mnt)], capture_output=True,
                       text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    try:
        assert wait_mount(m.mnt, True)
        plugins = (m.mnt / ".mlfs" / "plugins").read_text()
        assert "logistic train " in plugins, plugins
        assert f" {tmp_path}/rel/logistic.so" in plugins, plugins
    finally:
        subprocess.run(["fusermount3", "-u", str(m.mnt)])
    assert wait_mount(m.mnt, False)


def test_root_listing(mlfs):
    names = sorted(os.listdir(mlfs.mnt))
    assert names == [".mlfs", "README", "batch", "datasets", "deployments",
                     "features", "jobs", "models", "train"]
    assert sorted(os.listdir(mlfs.mnt / ".mlfs")) == [
        "cache", "errors", "http", "metrics.prom", "plugins", "stats",
        "version"]
    readme = (mlfs.mnt / "README").read_text()
    assert "datasets/" in readme
    assert os.stat(mlfs.mnt / "README").st_size == len(readme.encode())


def super_options(mnt):
    """The kernel's options of the mount at mnt (mountinfo after " - ")."""
    with open("/proc/self/mountinfo") as f:
        line = next(ln for ln in f if f" {mnt} " in ln)
    return line.split(" - ")[1]


def test_reads_are_sized_to_splice(mlfs, tmp_path):
    """Reads are at most 1008 KiB (-o max_read), so that their answer and
    libfuse's three pages fit a 1 MiB pipe: at 1 MiB every read fell back
    to a buffer and a copy.  The bytes cross request boundaries intact,
    read a MiB at a time and at odd sizes, through the page cache and
    around it."""
    assert "max_read=1032192" in super_options(mlfs.mnt)
    data = bytearray(b"a,b\n")
    i = 0
    while len(data) < (3 << 20) + 12345:
        data += b"%d,%d\n" % (i, i * 7919 % 1000003)
        i += 1
    src = tmp_path / "d.csv"
    src.write_bytes(data)
    ds = mlfs.mnt / "datasets" / "spliced"
    ds.mkdir()
    subprocess.run(["cp", str(src), str(ds / "data.csv")], check=True,
                   timeout=60)
    for f in (ds / "data.csv", ds / "v1" / "data.csv"):
        for bs in ("1M", "4M", "1031k", "4k"):
            r = subprocess.run(["dd", f"if={f}", "bs=" + bs, "status=none"],
                               capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert r.stdout == data, (f, bs)
    # the manual's word: data.csv bypasses the page cache, v<n>/ maps
    for f, ok in ((ds / "v1" / "data.csv", True), (ds / "data.csv", False)):
        with open(f, "rb") as fh:
            try:
                with mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as m:
                    assert ok and m[:] == data
            except OSError as e:
                assert not ok and e.errno == errno.ENODEV


def test_a_users_max_read_is_replaced(mlfs_factory):
    """-o max_read is the daemon's: a user's value used to leave the init
    reply disagreeing with the mount (`init() and fuse_session_new()
    requested different maximum read size`), and no mount."""
    m = mlfs_factory(opts=["max_read=4096"])
    assert "max_read=1032192" in super_options(m.mnt)
    assert (m.mnt / "README").read_text()


def test_unknown_xattr_is_enodata(mlfs):
    import errno
    try:
        os.getxattr(mlfs.mnt / "README", "user.nope")
        assert False, "getxattr succeeded"
    except OSError as e:
        assert e.errno == errno.ENODATA
    # no POSIX ACLs: their names are not supported, as security.* is
    for name in ("system.posix_acl_access", "system.posix_acl_default"):
        try:
            os.getxattr(mlfs.mnt / "README", name)
            assert False, "getxattr succeeded"
        except OSError as e:
            assert e.errno == errno.EOPNOTSUPP


def test_security_xattrs_are_not_supported_so_ls_stops_asking(mlfs):
    """security.* and the POSIX ACL names are EOPNOTSUPP: ls -l then asks
    once, not once per entry; the mount's own xattrs stay, and xattrs stay
    on."""
    import errno
    import subprocess
    d = mlfs.mnt / "datasets"
    for i in range(20):
        (d / f"d{i:02}").mkdir()
    for name in ("security.selinux", "security.capability"):
        try:
            os.getxattr(d / "d00", name)
            assert False, "getxattr succeeded"
        except OSError as e:
            assert e.errno == errno.EOPNOTSUPP
    # what ls -l asks, counted by strace: with ENODATA it asked for each
    trace = mlfs.tmp / "ls.trace"
    r = subprocess.run(["strace", "-f", "-e", "trace=getxattr,lgetxattr",
                        "-o", str(trace), "ls", "-l", str(d)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count(" d") >= 20, r.stderr
    asked = trace.read_text().count('"security.')
    assert 1 <= asked <= 2, trace.read_text()
    acls = trace.read_text().count('"system.posix_acl_')
    assert 1 <= acls <= 4, trace.read_text()
    (d / "d00" / "data.csv").write_text("a,b\n1,2\n")
    assert os.getxattr(d / "d00" / "data.csv", "user.mlfs.state")


def test_files_cannot_be_created_or_removed(mlfs):
    import errno
    import pytest
    with pytest.raises(OSError) as e:
        (mlfs.mnt / "newfile").write_text("x")
    assert e.value.errno in (errno.EACCES, errno.EPERM)
    with pytest.raises(OSError) as e:
        os.unlink(mlfs.mnt / "README")
    assert e.value.errno in (errno.EACCES, errno.EPERM)


def test_errors_is_a_stream_tail_f_follows(mlfs):
    import select
    errs = mlfs.mnt / ".mlfs" / "errors"
    assert errs.read_text() == "" and os.stat(errs).st_size == 0
    (mlfs.mnt / "datasets" / "d").mkdir()
    mlfs.expect("rejected")
    tail = subprocess.Popen(["tail", "-f", "-n", "+1", str(errs)],
                            stdout=subprocess.PIPE)
    try:
        time.sleep(0.3)
        for i in range(2):
            try:
                with open(mlfs.mnt / "datasets" / "d" / "data.csv", "w") as f:
                    f.write(f"a,b\n{i}\n")
            except OSError:
                pass
        out = b""
        deadline = time.monotonic() + 10
        while out.count(b"\n") < 2 and time.monotonic() < deadline:
            r, _, _ = select.select([tail.stdout], [], [], 0.5)
            if r:
                out += os.read(tail.stdout.fileno(), 4096)
        got = out.decode().splitlines()
        assert len(got) == 2, got
        assert all("datasets/d/data.csv:2:2: record has 1 field" in g
                   for g in got)
    finally:
        tail.kill()
        tail.wait()
    assert os.stat(errs).st_size == len(errs.read_text().encode())


def test_second_mount_of_a_store_is_refused(mlfs, tmp_path):
    other = tmp_path / "mnt2"
    other.mkdir()
    r = run("-o", f"cache={tmp_path}/c2", str(mlfs.store), str(other))
    assert r.returncode != 0
    assert "already mounted by another mlfs" in r.stderr
    assert not is_mounted(other)


def test_a_users_handle_still_open_at_unmount_is_freed(mlfs_factory):
    """SIGTERM unmounts while another user holds a file open: the daemon
    frees the handle the kernel never released and exits (it once
    deadlocked on the per-uid count's lock, which the unmount held)."""
    m = mlfs_factory(opts=["allow_other"], public=True)
    holder = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
         "--clear-groups", "sh", "-c", 'exec 3<"$1"; echo open; sleep 60',
         "sh", str(m.mnt / ".mlfs" / "version")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=15) == 0
    finally:
        holder.kill()
        holder.wait()
