"""pytest fixtures: a real mlfs mounted per test.

The `mlfs` fixture starts build/fs/mlfs with -f on a fresh temporary store,
cache and mountpoint, waits for the mount, and at teardown unmounts it,
requires the daemon to exit 0, and kills it (by PID) only if it does not.
Lines in the daemon's stderr that look like errors, warnings, leaks or
sanitizer reports fail the test unless the test declared them expected
with mlfs.expect(regex).

When the test command runs the suite it sets MLFS_TEST_TMP, a directory of
its own: every daemon's PID is appended to MLFS_TEST_TMP/pids and public
mountpoints are made under it, so its EXIT trap can unmount and end, by
PID, whatever a crashed or timed-out test left behind.

A read that blocks (jobs/<j>/wait, a parked reader) goes through
read_blocking(), which bounds it: nothing in the suite waits for ever.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MLFS_BUILD", ROOT / "build"))
MLFS = BUILD / "fs" / "mlfs"
FUSE_SUPER_MAGIC = 0x65735546
TEST_TMP = os.environ.get("MLFS_TEST_TMP")

BAD_LINE = re.compile(
    r"\b(error|warning|leak(ed|s)?)\b|Sanitizer|runtime error", re.I)


def read_blocking(path, timeout=120):
    """The text of a file whose read blocks (jobs/<j>/wait), read by a
    child cat that is killed (SIGKILL ends a read parked in FUSE) after
    timeout seconds; raises subprocess.TimeoutExpired then."""
    r = subprocess.run(["cat", str(path)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"cat {path}: {r.stderr}"
    return r.stdout


NOBODY = 65534


def as_user(argv, uid=NOBODY, gid=NOBODY, groups=(), timeout=60, **kw):
    """Run argv as another user (setpriv: uid, gid, exactly these
    supplementary groups), bounded; returns the CompletedProcess."""
    g = ["--groups=" + ",".join(map(str, groups))] if groups \
        else ["--clear-groups"]
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                           *g, *argv], capture_output=True, text=True,
                          timeout=timeout, **kw)


def wait_job(mnt, job, timeout=120):
    """A job's final status line, read from jobs/<job>/wait (bounded)."""
    return read_blocking(Path(mnt) / "jobs" / job / "wait", timeout)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path and "fuse" in line:
                return True
    return False


def stacks(pid):
    """Every thread's stack of a stuck process, for the failure message:
    gdb's backtraces when gdb is there, else each task's kernel stack."""
    if shutil.which("gdb"):
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex",
                            "thread apply all bt"], capture_output=True,
                           text=True, timeout=120)
        return r.stdout[-30000:]
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        try:
            out.append(f"{task.name} {(task / 'comm').read_text().strip()}"
                       f" {(task / 'wchan').read_text()}\n"
                       f"{(task / 'stack').read_text()}")
        except OSError:
            pass
    return "\n".join(out)


class Mount:
    """One running mlfs daemon over a store directory."""

    def __init__(self, tmp, opts=(), url=None, env=None):
        self.tmp = Path(tmp)
        self.url = url          # s3://bucket/prefix, or the store dir
        self.env = env or {}
        self.store = self.tmp / "store"
        self.cache = self.tmp / "cache"
        self.mnt = self.tmp / "mnt"
        for d in (self.store, self.mnt):
            d.mkdir(exist_ok=True)
        self.opts = list(opts)
        self.expected = []
        self.logs = []
        self.proc = None
        self.errlog = None

    @property
    def argv(self):
        o = ["cache=" + str(self.cache)] + self.opts
        return [str(MLFS), "-f", "-o", ",".join(o),
                self.url or str(self.store), str(self.mnt)]

    def start(self):
        n = len(self.logs)
        self.errlog = self.tmp / f"mlfs-stderr-{n}.log"
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.logs.append(self.errlog)
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL,
            stderr=open(self.errlog, "wb"), stdin=subprocess.DEVNULL,
            env=env, start_new_session=True)   # a session leader, as
        # a detached daemon is (what a terminal opened by it would hang up)
        if TEST_TMP:
            with open(os.path.join(TEST_TMP, "pids"), "a") as f:
                f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlfs exited {self.proc.returncode} before mounting: "
                    f"{' '.join(self.argv)}\n{self.errlog.read_text()}")
            if is_mounted(self.mnt):
                return self
            time.sleep(0.02)
        raise RuntimeError("mlfs did not mount in 15 s: " +
                           " ".join(self.argv))

    def stop(self, check=True):
        """Unmount and wait; returns the daemon's exit status."""
        if self.proc is None:
            return None
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)],
                           stderr=subprocess.DEVNULL)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            where = stacks(self.proc.pid)   # what it was stuck in
            self.proc.kill()
            self.proc.wait()
            rc = "killed after 20 s; its threads were in:\n" + where
        self.proc = None
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", str(self.mnt)])
        if check and rc != 0:
            pytest.fail(f"mlfs exited {rc}: {' '.join(self.argv)}\n"
                        f"{self.errlog.read_text()}")
        return rc

    def kill9(self):
        """Crash the daemon (SIGKILL) and clear the dead mount."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        subprocess.run(["fusermount3", "-uz", str(self.mnt)])

    def restart(self):
        self.stop()
        return self.start()

    def expect(self, regex):
        """Declare daemon stderr lines matching regex as expected."""
        self.expected.append(re.compile(regex))

    def stderr(self):
        return "".join(p.read_text(errors="replace") for p in self.logs
                       if p.exists())

    def bad_lines(self):
        out = []
        for line in self.stderr().splitlines():
            if BAD_LINE.search(line) and not any(
                    e.search(line) for e in self.expected):
                out.append(line)
        return out

    def errors(self):
        return (self.mnt / ".mlfs" / "errors").read_text()


@pytest.fixture
def mlfs_factory(tmp_path):
    mounts = []
    publics = []

    def make(opts=(), sub="m", public=False, url=None, env=None):
        if public:
            # other users must reach the mount: a world-searchable path
            d = Path(tempfile.mkdtemp(prefix="mlfs-test-",
                                      dir=TEST_TMP or "/tmp"))
            os.chmod(d, 0o755)
            publics.append(d)
        else:
            d = tmp_path / sub
            d.mkdir(exist_ok=True)
        m = Mount(d, opts, url=url, env=env)
        mounts.append(m)
        return m.start()

    yield make
    failures = []
    for m in mounts:
        try:
            m.stop()
        except BaseException as e:  # keep unmounting the others
            failures.append(str(e))
        bad = m.bad_lines()
        if bad:
            failures.append("daemon stderr:\n" + "\n".join(bad) +
                            "\nmount: " + " ".join(m.argv))
    for d in publics:
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def mlfs(mlfs_factory):
    return mlfs_factory()


def pytest_report_header(config):
    return f"mlfs binary: {MLFS}"


def _s3_env_file(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k] = v.strip('"')
    return env


@pytest.fixture(scope="session")
def s3server(tmp_path_factory):
    """The S3 test servers: s3rver behind the SigV4-verifying gateway and
    the fault proxy (tests/s3/start.sh).  Uses the ones the test command
    started (MLFS_S3_ENV names their env file), else starts its own."""
    if os.environ.get("MLFS_S3_ENV"):
        yield _s3_env_file(os.environ["MLFS_S3_ENV"])
        return
    d = tmp_path_factory.mktemp("s3")
    r = subprocess.run(["bash", str(ROOT / "tests/s3/start.sh"), str(d)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        yield _s3_env_file(d / "env")
    finally:
        subprocess.run(["bash", str(ROOT / "tests/s3/stop.sh"), str(d)],
                       capture_output=True)
