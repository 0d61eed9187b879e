#!/usr/bin/python3
"""Two writers of one S3 prefix, a campaign (issue 21, point 1): N trials
of SIGSTOP, kill -9 and restart across two mounts, A and B, of one bucket
prefix (each with its own cache), while a worker per mount writes new
dataset versions through it.  Ends with every acknowledged version in the
bucket, byte for byte, and nothing replaced.

Not part of the default suite: run by hand or nightly.

  /usr/bin/python3 tests/stress/s3_writers.py [TRIALS] [SEED]

Needs root (FUSE), a build (MLFS_BUILD, default build-test) and the S3
test servers: those MLFS_S3_ENV names (the env file tests/s3/start.sh
wrote), else its own, started with tests/s3/start.sh into its temporary
folder and stopped with tests/s3/stop.sh at the end, failed or not.
Prints one line per trial and the counts at the end (JSON); exits 1 if
any check failed, and then keeps its temporary folder (mounts' logs,
caches, the workers' logs, the trial's timeline) for a look.

The workers.  One per mount, each writing only through its own mount,
whatever that mount is at the moment: new content for data.csv (cp: a
whole new file; append: what the mount shows plus new rows) of d0..d3,
and mkdir of those not there yet.  Every content is unique (its last row
carries the worker and a counter).  A mount that is not the writer
refuses with EROFS and the worker tries again a little later; a mount
that is gone (kill -9, restart) fails with ENOTCONN or ENOENT alike.

What "acknowledged" means.  A version is acknowledged when the worker's
close() of data.csv returned 0 on a mount: mlfs has then published it in
that mount's index and made it durable in its cache's outbox (fsync'd
before close returns), to be exported in the background.  An
acknowledged mkdir: mkdir() returned 0.  The claim checked is that
nothing acknowledged is lost or replaced in the bucket, with one
exception the design makes: a writer that lost its lease (stalled past
it, or crashed and replaced) never exports its outbox again; at its next
mount the outbox moves whole to CACHE/kept/ for a human, and
`.mlfs/cache` lists it (kept_outbox).  Such versions are counted as
"kept", not lost, after checking that the kept folder really holds
their manifest and their blob (or the bucket holds the blob) byte for
byte (kept_begun_after_sigcont counts those begun after a stalled
writer's SIGCONT: with the lease rewritten expired rather than run
out, its own clock still gives it the lease until its next look at the
bucket; see stall below).  A version is also "synced" when, after its
close, a write of `sync` to `.mlfs/cache` on the same mount returned 0
at close, and that mount said "lease writer" with the same lease
generation before the write of data.csv and after the sync (so one
daemon, writer throughout): a synced version must be in the bucket, not
merely kept.  (The worker writes `sync` from Python, not with the
shell's `echo sync >`: bash ignores an error of close(), and
`.mlfs/cache` runs the command at close.)

Each trial mounts A and B of a new prefix in the same instant: exactly
one takes the lease.  (s3rver answers a PUT before its file is written,
so the mount that did not put the new prefix's mlfs-format may read it
empty and exit; it is started again, once, and counted as
s3rver_partial_reads: S3 never shows a partial object.)

The events, at random moments (the first of each trial cycles through
the kinds so that every kind happens; a real stall costs 30 s, so only
every fifth trial has one):
  stall        SIGSTOP the writer; its lease runs out (rewritten expired
               in the bucket, as tests/integration/test_s3.py's
               expire_lease does: the mount has no lease ttl option and
               the lease is 30 s); restart the other mount, which takes
               the lease and writes; SIGCONT the first.  By its own
               clock the first still holds the lease, so it may accept
               a change before it looks at the bucket again (its next
               export or renewal): such a change is kept, never
               exported.
  stall_real   the same, but the lease really runs out (SIGSTOP past its
               expiry, about 30 s): the writer's own clock says it has
               lost it, so it must refuse every change begun after
               SIGCONT.
  kill_writer  kill -9 the writer, restart it on its cache: it takes the
               lease again (still its own) and exports its outbox.
  kill_takeover  kill -9 the writer; its lease runs out (rewritten); the
               other mount restarts and takes it; the first restarts on
               its cache (its outbox, if any, is kept aside).
  kill_reader  kill -9 the other mount and restart it.
  handoff      unmount the writer cleanly, restart the other (it takes
               the lease), mount the first again (a reader now).
  restart_writer  unmount the writer cleanly and mount it again.
  restart_reader  the same for the other mount.
A clean unmount first keeps the mount's worker off it (an unmount of a
mount with open files fails with EBUSY); kill -9 does not.
After each event: within 20 s, at most one mount says "lease writer" in
its `.mlfs/cache`, and it is the one the lease object names, at its
generation.

At the end of a trial: the workers stop; the lease holder syncs and
unmounts; each cache is mounted once more read-only (`-o ro`: a stale
outbox moves aside, `.mlfs/cache` lists it) and unmounted; then a fresh
third mount (`-o ro`, empty cache) is made.  The checks, reading the
bucket directly (s3rver's directory, with the objects' metadata):
  - every acknowledged version's manifest and blob are in the bucket,
    the blob named by the xxh3-128 of its bytes (xxhsum) and holding
    exactly what the worker wrote (SHA-256), or it is kept (above);
    a synced one is in the bucket; an acknowledged mkdir left its
    dataset.json in the bucket or kept;
  - nothing replaced: an acknowledged version missing from the bucket
    whose version number (the worker reads `latest` after its close)
    holds other content is counted as replaced; every manifest in the
    bucket holds content some worker wrote whole for that dataset, was
    written by that worker (lineage.pid) through its own mount
    (x-amz-meta-mlfs-writer names that mount's id); no dataset.json was
    put under an older lease generation than one of its versions; the
    catalog's writer generation, polled every 0.2 s, never goes back
    (a stalled writer's catalog put over the new writer's).  Manifest
    keys PUT twice with success (the gateway's log, when there is one)
    are counted, not failed: a writer's create may replace an object
    of its own mount id (a retry, or an export again after a crash);
  - one writer at a time, as the bucket shows it: every manifest's
    writer tag names the mount that held that lease generation (the
    lease object, polled every 0.2 s, and the mounts' own
    `.mlfs/cache`), and no version exported under an older generation
    was begun after one under a newer generation was acknowledged; the
    samples after each event (above);
  - the fresh third mount shows every version the bucket has, at once
    (from the catalog, after a clean handoff) and after its check
    against the bucket, every acknowledged one with the worker's bytes,
    and `latest` names the highest;
  - no daemon printed a sanitizer report, and every clean unmount
    exited 0.
"""
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("MLFS_BUILD", str(ROOT / "build-test"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import Mount, _s3_env_file  # noqa: E402

DATASETS = 4
PARTIAL_FORMAT = 'store format "" is not supported'
SETTLE_S = 20           # a fenced writer notices within a renewal (10 s)

WORKER = r'''
import errno, hashlib, os, random, sys, time
mnt, log, seed, wid, stopfile = sys.argv[1:6]
rnd = random.Random(int(seed))
logf = open(log, "a", buffering=1)

def note(*w):
    logf.write(f"{time.time():.6f} " + " ".join(map(str, w)) + "\n")

def role():
    """writer/<gen>, fenced/<gen>, reader/<gen>, ... or down."""
    try:
        with open(os.path.join(mnt, ".mlfs", "cache")) as f:
            info = {}
            for line in f.read().splitlines():
                k, _, v = line.partition(" ")
                info.setdefault(k, v)
        return info.get("lease", "?") + "/" + info.get("lease_generation", "?")
    except OSError:
        return "down"

def rows(n):
    return "".join(f"{rnd.random():.6f},{rnd.randrange(3)}\n"
                   for _ in range(n)).encode()

def nap(e):
    if e.errno in (errno.EROFS, errno.ENOTCONN, errno.ENOENT, errno.EIO,
                   errno.ECONNABORTED, errno.EAGAIN, errno.EBUSY):
        time.sleep(0.3)

hold = os.path.join(os.path.dirname(stopfile), "hold-" + wid)
idle = os.path.join(os.path.dirname(stopfile), "idle-" + wid)
n = 0
while not os.path.exists(stopfile):
    time.sleep(rnd.uniform(0, 0.05))
    if os.path.exists(hold):        # the controller unmounts: keep off
        open(idle, "w").close()
        while os.path.exists(hold) and not os.path.exists(stopfile):
            time.sleep(0.05)
        os.unlink(idle)
        continue
    name = f"d{rnd.randrange(%(datasets)d)}"
    d = os.path.join(mnt, "datasets", name)
    n += 1
    before = role()
    if before == "down":
        time.sleep(0.2)
        continue
    try:
        if not os.path.isdir(d):
            note("try", "mkdir", name, "-", before)
            os.mkdir(d)
            note("ack", "mkdir", name, "-", before)
            continue
    except OSError as e:
        note("fail", "mkdir", name, "-", e.errno)
        nap(e)
        continue
    # the last row is this write's own: a unique value of x
    add = rows(rnd.randrange(0, 40)) + \
        f"{%(wbase)s + n}.5,{rnd.randrange(3)}\n".encode()
    kind, sha = "cp", "-"
    try:
        if rnd.random() < 0.5 or not os.path.lexists(
                os.path.join(d, "latest")):
            body, data, mode = b"x,y\n" + add, b"x,y\n" + add, "wb"
        else:
            kind = "append"
            with open(os.path.join(d, "data.csv"), "rb") as f:
                base = f.read()
            body, data, mode = base + add, add, "ab"
        sha = hashlib.sha256(body).hexdigest()
        note("try", kind, name, sha, before)
        with open(os.path.join(d, "data.csv"), mode) as f:
            f.write(data)
    except OSError as e:
        note("fail", kind, name, sha, e.errno)
        nap(e)
        continue
    try:                            # the version it made: only this
        v = os.readlink(os.path.join(d, "latest"))   # worker writes here
    except OSError:
        v = "?"
    note("ack", kind, name, sha, before, v)
    try:
        with open(os.path.join(mnt, ".mlfs", "cache"), "w") as f:
            f.write("sync\n")
    except OSError as e:
        note("syncfail", kind, name, sha, e.errno)
        nap(e)
        continue
    after = role()
    note("synced" if after == before and before.startswith("writer/")
         else "syncelse", kind, name, sha, after)
'''


def now():
    return time.time()


class S3:
    """The test servers' env, and direct access to s3rver (unsigned: it
    serves those) for the lease and its data directory."""

    def __init__(self, env, gwlog=None):
        self.env = env
        self.bucket = env["MLFS_S3_BUCKET"]
        self.direct = env["MLFS_S3_DIRECT_ENDPOINT"]
        self.data = Path(env["MLFS_S3_DATA"]) / self.bucket
        self.gwlog = gwlog

    def url(self, prefix, key):
        return f"{self.direct}/{self.bucket}/{prefix}/{key}"

    def lease(self, prefix):
        try:
            with urllib.request.urlopen(self.url(prefix, "mlfs-lease"),
                                        timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def writer_tag(self, prefix, key):
        """The x-amz-meta-mlfs-writer of an object (HEAD), or None."""
        req = urllib.request.Request(self.url(prefix, key), method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.headers.get("x-amz-meta-mlfs-writer")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def expire_lease(self, prefix):
        """The lease as it is but expired, as its holder's would be 30 s
        after its last renewal (test_s3.py's expire_lease, by a plain
        PUT to s3rver instead of aws s3 cp)."""
        lease = self.lease(prefix)
        lease["expires"] = 0
        req = urllib.request.Request(self.url(prefix, "mlfs-lease"),
                                     data=json.dumps(lease).encode(),
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        return lease

    def objects(self, prefix):
        """{key under prefix: (bytes, metadata)} from s3rver's folder."""
        top = self.data / prefix
        out = {}
        for p in top.rglob("*._S3rver_object"):
            key = str(p.relative_to(top))[:-len("._S3rver_object")]
            meta = p.with_name(p.name[:-len("_object")] + "_metadata.json")
            out[key] = (p.read_bytes(), json.loads(meta.read_text())
                        if meta.exists() else {})
        return out

    def manifest_puts(self, prefix):
        """{manifest key: successful PUTs} from the gateway's log."""
        if not self.gwlog or not Path(self.gwlog).exists():
            return None
        want = f"PUT /{self.bucket}/{prefix}/datasets/"
        puts = {}
        for line in Path(self.gwlog).read_text(errors="replace") \
                .splitlines():
            i = line.find(want)
            if i < 0:
                continue
            path, _, rest = line[i + 4:].partition(" HTTP/")
            parts = rest.split()
            if "?" in path or not path.endswith(".json") or \
                    len(parts) < 2 or parts[1] != "200":
                continue
            key = path[len(f"/{self.bucket}/{prefix}/"):]
            if key.rsplit("/", 1)[-1][1:-5].isdigit():
                puts[key] = puts.get(key, 0) + 1
        return puts


def xxh128_many(blobs):
    """{key: xxh3-128 hex} of {key: bytes}, by xxhsum (one run)."""
    if not blobs:
        return {}
    with tempfile.TemporaryDirectory() as d:
        names = {}
        for i, (k, b) in enumerate(blobs.items()):
            p = os.path.join(d, str(i))
            Path(p).write_bytes(b)
            names[p] = k
        r = subprocess.run(["xxhsum", "-H2", *names], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        out = {}
        for line in r.stdout.splitlines():
            h, p = line.split(None, 1)
            out[names[p.strip()]] = h
        return out


def sha(b):
    return hashlib.sha256(b).hexdigest()


def cache_info(m):
    """.mlfs/cache as {first word: rest} (kept_outbox: a list)."""
    info = {"kept_outbox": []}
    for line in (m.mnt / ".mlfs" / "cache").read_text().splitlines():
        k, _, v = line.partition(" ")
        if k == "kept_outbox":
            info[k].append(v)
        else:
            info.setdefault(k, v)
    return info


def read_kept(dirs):
    """{key: bytes} of the kept outboxes in dirs (data file <h> beside
    <h>.key, whose first line is the key)."""
    out = {}
    for d in dirs:
        for side in Path(d).glob("*.key"):
            data = side.with_suffix("")
            if data.exists():
                key = side.read_text().split("\n", 1)[0]
                out[key] = data.read_bytes()
    return out


class Trial:
    def __init__(self, s3, tmp, t, seed, rnd, kind):
        self.s3 = s3
        self.tmp = tmp
        self.t = t
        self.rnd = rnd
        self.first = kind
        self.prefix = f"s3w-{seed}-{t}-{uuid.uuid4().hex[:6]}"
        url = f"s3://{s3.bucket}/{self.prefix}"
        opts = [f"endpoint={s3.env['MLFS_S3_ENDPOINT']}", "path_style",
                "import_ttl=3"]
        self.opts = opts
        self.m = {}
        for name in "AB":
            (tmp / name).mkdir()
            self.m[name] = Mount(tmp / name, list(opts), url=url,
                                 env=s3.env)
        self.ids = {"A": set(), "B": set()}
        self.gen_owner = {}        # lease generation -> mount id
        self.leases = []           # (time, owner, generation, expires)
        self.timeline = []         # (time, what)
        self.problems = []
        self.stopped = set()       # mounts SIGSTOPped now
        self.exits = []            # (mount, status) of clean stops
        self.strict = []           # (mount, from time, to time)
        self.conts = []            # (mount, time) of SIGCONT after a stall
        self.workers = {}
        self.partial_reads = 0     # s3rver's, at the start (see run)
        self.stopfile = tmp / "stop"
        self.poll_stop = threading.Event()

    # --- bookkeeping

    def note(self, what):
        self.timeline.append((now(), what))

    def bad(self, what):
        self.note("PROBLEM " + what)
        self.problems.append(what)

    def who(self, mount_id):
        for n, ids in self.ids.items():
            if mount_id in ids:
                return n
        return None

    def poll_leases(self):
        """Every 0.2 s: the lease object (who holds which generation),
        and the catalog's writer tag, whose generation never goes back:
        a catalog put under an older generation after one put under a
        newer would be a stale writer's, replacing the new writer's."""
        last = None
        cat = (0, "")
        while not self.poll_stop.wait(0.2):
            try:
                lease = self.s3.lease(self.prefix)
                tag = self.s3.writer_tag(self.prefix, "mlfs-catalog.json")
            except Exception:   # noqa: BLE001 (s3rver mid-rewrite)
                continue
            mid, _, g = (tag or "").partition("/")
            if g.isdigit() and (int(g), mid) != cat:
                self.note(f"catalog put by {mid[:8]}/{g}")
                if int(g) < cat[0]:
                    self.bad(f"the catalog of generation {cat[0]} "
                             f"({self.who(cat[1])}) replaced by one of "
                             f"generation {g} ({self.who(mid)})")
                cat = (int(g), mid)
            if not lease:
                continue
            cur = (lease.get("owner"), lease.get("generation"),
                   lease.get("expires"))
            if cur != last:
                self.leases.append((now(), *cur))
                g, o = cur[1], cur[0]
                if self.gen_owner.setdefault(g, o) != o:
                    self.bad(f"lease generation {g} held by two mounts "
                             f"({self.gen_owner[g][:8]}, {o[:8]})")
                last = cur

    def learn(self, name):
        """Note a running mount's id, and its generation if a writer."""
        info = cache_info(self.m[name])
        self.ids[name].add(info["mount_id"])
        if info["lease"] == "writer":
            g = int(info["lease_generation"])
            if self.gen_owner.setdefault(g, info["mount_id"]) != \
                    info["mount_id"]:
                self.bad(f"generation {g}: {name} says it is the writer; "
                         f"the lease said {self.gen_owner[g][:8]}")
        return info

    # --- mounts

    def start(self, name, extra=()):
        m = self.m[name]
        m.opts = list(self.opts) + list(extra)
        m.start()
        self.note(f"start {name} {' '.join(extra)}".rstrip())
        hold = self.tmp / f"hold-{name}"
        if hold.exists():
            hold.unlink()
        return self.learn(name)

    def hold(self, name):
        """Keep the mount's worker off it (a clean unmount of a busy
        mount fails with EBUSY); start() lets it go on."""
        if name not in self.workers or self.workers[name][0].poll() \
                is not None:
            return
        (self.tmp / f"hold-{name}").write_text("")
        deadline = now() + 60
        while not (self.tmp / f"idle-{name}").exists():
            if now() > deadline:
                self.bad(f"worker {name} never let go of its mount")
                return
            time.sleep(0.02)

    def stop(self, name):
        m = self.m[name]
        if name in self.stopped:
            self.cont(name)
        self.hold(name)
        rc = m.stop(check=False)
        self.exits.append((name, rc))
        self.note(f"stop {name} (exit {rc})")
        if rc != 0:
            self.bad(f"{name}: a clean unmount exited {rc}")

    def kill9(self, name):
        m = self.m[name]
        if name in self.stopped:
            self.stopped.discard(name)   # SIGKILL ends a stopped one too
        m.kill9()
        self.note(f"kill -9 {name}")

    def sigstop(self, name):
        os.kill(self.m[name].proc.pid, signal.SIGSTOP)
        self.stopped.add(name)
        self.note(f"SIGSTOP {name}")

    def cont(self, name):
        os.kill(self.m[name].proc.pid, signal.SIGCONT)
        self.stopped.discard(name)
        self.note(f"SIGCONT {name}")

    def roles(self):
        """{mount: .mlfs/cache info} of the mounts running now."""
        out = {}
        for n, m in self.m.items():
            if m.proc is not None and n not in self.stopped:
                out[n] = self.learn(n)
        return out

    def writer(self):
        """The mount the lease object names, if it is one of ours."""
        lease = self.s3.lease(self.prefix)
        return self.who(lease["owner"]) if lease else None

    def one_writer(self, why):
        """Within SETTLE_S, at most one mount says "lease writer" and the
        lease object names it at its generation."""
        deadline = now() + SETTLE_S
        while True:
            roles = self.roles()
            lease = self.s3.lease(self.prefix)
            writers = [n for n, i in roles.items() if i["lease"] == "writer"]
            ok = len(writers) <= 1 and all(
                lease and roles[n]["mount_id"] == lease["owner"] and
                int(roles[n]["lease_generation"]) == lease["generation"]
                for n in writers)
            if ok:
                return writers[0] if writers else None
            if now() > deadline:
                self.bad(f"after {why}: writers {writers}, lease "
                         f"{lease and lease['owner'][:8]}/"
                         f"{lease and lease['generation']}")
                return None
            time.sleep(0.5)

    def takes_over(self, name, why):
        """name was just mounted after the lease ran out: it must be the
        writer."""
        info = self.learn(name)
        lease = self.s3.lease(self.prefix)
        if info["lease"] != "writer" or lease["owner"] != info["mount_id"]:
            self.bad(f"{why}: {name} did not take the lease "
                     f"({info['lease']}: {info.get('lease_why', '')})")

    def workers_start(self):
        for i, name in enumerate("AB"):
            log = self.tmp / f"worker-{name}.log"
            w = subprocess.Popen(
                [sys.executable, "-c",
                 WORKER % {"datasets": DATASETS,
                           "wbase": (i + 1) * 10 ** 7},
                 str(self.m[name].mnt), str(log),
                 str(self.rnd.randrange(1 << 30)), name,
                 str(self.stopfile)],
                stdout=subprocess.DEVNULL,
                stderr=open(self.tmp / f"worker-{name}.err", "w"))
            self.workers[name] = (w, log)

    def workers_stop(self):
        self.stopfile.write_text("")
        for name in list(self.stopped):
            self.cont(name)
        for name, (w, _) in self.workers.items():
            try:
                w.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.bad(f"worker {name} hung; killed")
                w.kill()
                w.wait()

    # --- events

    def pause(self, lo=0.5, hi=3.0):
        time.sleep(self.rnd.uniform(lo, hi))

    def ev_stall(self, real=False):
        w = self.writer()
        if w is None:
            return self.ev_restart_reader()
        o = "B" if w == "A" else "A"
        self.sigstop(w)
        self.pause(0.2, 1.5)
        if real:
            lease = self.s3.lease(self.prefix)
            wait = lease["expires"] + 1 - now()
            self.note(f"waiting {wait:.0f} s for the lease to run out")
            time.sleep(max(wait, 0))
        else:
            self.s3.expire_lease(self.prefix)
            self.note("lease rewritten expired")
        self.stop(o)
        self.start(o)
        self.takes_over(o, "stall")
        self.pause()
        self.cont(w)
        self.conts.append((w, now()))
        if real:
            # its own clock says the lease is gone: nothing begun from
            # now on may be accepted
            self.strict.append((w, now(), None))
        self.one_writer("stall")
        if real:
            self.strict[-1] = (w, self.strict[-1][1], now())

    def ev_stall_real(self):
        self.ev_stall(real=True)

    def ev_kill_writer(self):
        w = self.writer()
        if w is None:
            return self.ev_restart_reader()
        self.kill9(w)
        self.pause(0, 1)
        self.start(w)
        self.takes_over(w, "kill_writer")
        self.one_writer("kill_writer")

    def ev_kill_takeover(self):
        w = self.writer()
        if w is None:
            return self.ev_restart_reader()
        o = "B" if w == "A" else "A"
        self.kill9(w)
        self.pause(0, 1)
        self.s3.expire_lease(self.prefix)
        self.note("lease rewritten expired")
        self.stop(o)
        self.start(o)
        self.takes_over(o, "kill_takeover")
        self.pause()
        self.start(w)
        self.one_writer("kill_takeover")

    def ev_kill_reader(self):
        w = self.writer()
        o = "B" if w == "A" else "A"
        self.kill9(o)
        self.pause(0, 1)
        self.start(o)
        self.one_writer("kill_reader")

    def ev_handoff(self):
        w = self.writer()
        if w is None:
            return self.ev_restart_reader()
        o = "B" if w == "A" else "A"
        self.stop(w)
        self.stop(o)
        self.start(o)
        self.takes_over(o, "handoff")
        self.pause(0, 1)
        self.start(w)
        self.one_writer("handoff")

    def ev_restart_writer(self):
        w = self.writer()
        if w is None:
            return self.ev_restart_reader()
        self.stop(w)
        self.start(w)
        self.takes_over(w, "restart_writer")
        self.one_writer("restart_writer")

    def ev_restart_reader(self):
        w = self.writer()
        o = "B" if w == "A" else "A"
        self.stop(o)
        self.start(o)
        self.one_writer("restart_reader")

    # --- the run

    def run(self, events):
        poller = threading.Thread(target=self.poll_leases, daemon=True)
        try:
            # both at once: exactly one takes the lease
            go = threading.Barrier(2)
            errs = []

            def start(name):
                try:
                    go.wait(timeout=30)
                    try:
                        self.m[name].start()
                    except RuntimeError as e:
                        # s3rver answers a PUT before its file is
                        # written: a GET of the new prefix's mlfs-format
                        # right after the other mount's PUT may read ""
                        # (S3 never shows a partial object).  Once.
                        if PARTIAL_FORMAT not in str(e):
                            raise
                        self.partial_reads += 1
                        self.m[name].start()
                except Exception as e:      # noqa: BLE001
                    errs.append(f"{name}: {e}")
            ts = [threading.Thread(target=start, args=(n,)) for n in "AB"]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if errs:
                raise RuntimeError("; ".join(errs))
            self.note("started A and B together")
            poller.start()
            if self.one_writer("starting together") is None:
                self.bad("starting together: no writer")
            self.workers_start()
            for kind in events:
                self.pause()
                self.note(f"event {kind}")
                getattr(self, "ev_" + kind)()
            self.pause()
            self.workers_stop()
            self.finish()
        finally:
            self.poll_stop.set()
            if not self.stopfile.exists():
                self.stopfile.write_text("")
            for name in list(self.stopped):
                self.cont(name)
            for name, m in self.m.items():
                if m.proc is not None:
                    self.exits.append((name, m.stop(check=False)))
            for w, _ in self.workers.values():
                if w.poll() is None:
                    w.kill()
                    w.wait()
            if poller.is_alive():
                poller.join(timeout=10)
        return self.check()

    def finish(self):
        """The lease holder syncs and unmounts; each cache is mounted
        once more -o ro (a stale outbox moves aside) and unmounted."""
        self.kept_dirs = {"A": [], "B": []}
        w = self.writer()
        self.final_sync = None
        if w is not None and self.m[w].proc is not None:
            info = self.learn(w)
            try:
                with open(self.m[w].mnt / ".mlfs" / "cache", "w") as f:
                    f.write("sync\n")
                self.final_sync = "ok"
            except OSError as e:
                self.final_sync = errno.errorcode.get(e.errno, e.errno)
            self.note(f"final sync on {w} ({info['lease']}): "
                      f"{self.final_sync}")
            self.stop(w)
        for name in "AB":
            if self.m[name].proc is not None:
                self.stop(name)
        for name in "AB":
            info = self.start(name, ["ro"])
            self.kept_dirs[name] = info["kept_outbox"]
            on_disk = sorted(str(p) for p in
                             (self.m[name].cache / "kept").glob("*")) \
                if (self.m[name].cache / "kept").exists() else []
            if sorted(info["kept_outbox"]) != on_disk:
                self.bad(f"{name}: .mlfs/cache lists kept outboxes "
                         f"{info['kept_outbox']}, the cache has {on_disk}")
            self.stop(name)
        self.pending = {}
        for name in "AB":
            ob = self.m[name].cache / "blocks" / "outbox"
            keys = [p.read_text().split("\n", 1)[0]
                    for p in ob.glob("*.key")] if ob.exists() else []
            if keys:
                self.pending[name] = keys
        # a fresh third mount: read-only, empty cache
        (self.tmp / "C").mkdir()
        c = Mount(self.tmp / "C", list(self.opts) +
                  ["ro", "verify_delay=2"], url=self.m["A"].url,
                  env=self.s3.env)
        self.m["C"] = c
        c.start()
        self.note("start C (fresh, ro)")
        self.c_first = self.listing(c)
        deadline = now() + 60
        while not any(s in c.stderr() for s in
                      ("from the catalog checked against the bucket",
                       "objects read one by one")):
            if now() > deadline:
                self.bad("C: its index was never checked against the "
                         "bucket")
                break
            time.sleep(0.3)
        self.c_trusted = "from the catalog alone" in c.stderr()
        self.c_after = self.listing(c, contents=True)
        self.stop("C")

    def listing(self, c, contents=False):
        """{dataset: {version: sha or None, "latest": target}}."""
        out = {}
        top = c.mnt / "datasets"
        for name in sorted(os.listdir(top)):
            d = top / name
            vs = {}
            for v in os.listdir(d):
                if v[1:].isdigit() and v[0] == "v":
                    vs[v] = sha((d / v / "data.csv").read_bytes()) \
                        if contents else None
            if os.path.islink(d / "latest"):
                vs["latest"] = os.readlink(d / "latest")
            out[name] = vs
        return out

    # --- the checks

    def worker_log(self, name):
        ops = []
        for line in (self.tmp / f"worker-{name}.log").read_text() \
                .splitlines():
            w = line.split()
            ops.append((float(w[0]), w[1], w[2], w[3], w[4],
                        w[5] if len(w) > 5 else "",
                        w[6] if len(w) > 6 else ""))
        return ops

    def check(self):
        s3, bad = self.s3, self.bad
        objs = s3.objects(self.prefix)
        blobs = {k: b for k, (b, _) in objs.items()
                 if k.startswith("blobs/")}
        names = xxh128_many(blobs)
        for k, h in names.items():
            if k != f"blobs/{h[:2]}/{h}":
                bad(f"bucket: {k} holds bytes whose xxh3-128 is {h}")
        # the bucket's versions: (dataset, n) -> (sha, tag, manifest)
        bucket = {}
        for k, (body, meta) in objs.items():
            p = k.split("/")
            if len(p) != 3 or p[0] != "datasets" or \
                    not p[2].startswith("v") or not p[2][1:-5].isdigit():
                continue
            man = json.loads(body)
            blob = blobs.get(man["blob"])
            if blob is None:
                bad(f"bucket: {k} names {man['blob']}, not in the bucket")
                continue
            if len(blob) != man["size"]:
                bad(f"bucket: {k}: blob of {len(blob)} bytes, manifest "
                    f"says {man['size']}")
            bucket[(p[1], int(p[2][1:-5]))] = (
                sha(blob), meta.get("x-amz-meta-mlfs-writer", ""), man)
        # what the workers tried and had acknowledged
        tried = {}      # sha -> (mount, dataset, kind)
        acks = []       # dicts
        mkdirs = []
        pid = {n: w.pid for n, (w, _) in self.workers.items()}
        for name in "AB":
            log = self.worker_log(name)
            t_try = {}
            synced = set()
            for t, what, kind, ds, h, extra, ver in log:
                if what == "try":
                    t_try[(kind, ds, h)] = t
                    if h != "-":
                        tried[h] = (name, ds, kind)
                elif what == "ack" and kind == "mkdir":
                    mkdirs.append((name, ds, t))
                elif what == "ack":
                    acks.append({"mount": name, "ds": ds, "sha": h,
                                 "kind": kind, "t_ack": t,
                                 "t_try": t_try[(kind, ds, h)],
                                 "role": extra, "version": ver})
                elif what == "synced":
                    synced.add(h)
            for a in acks:
                if a["mount"] == name:
                    a["synced"] = a["sha"] in synced
        # where each acknowledged version is
        where = {}
        for (ds, n), (h, tag, man) in bucket.items():
            where.setdefault(h, []).append((ds, n))
        kept = {}
        kept_objs = {}
        for name in "AB":
            ko = read_kept(self.kept_dirs.get(name, []))
            kept_objs[name] = ko
            for k, body in ko.items():
                p = k.split("/")
                if len(p) == 3 and p[0] == "datasets" and \
                        p[2].startswith("v") and p[2][1:-5].isdigit():
                    man = json.loads(body)
                    blob = ko.get(man["blob"], blobs.get(man["blob"]))
                    if blob is None:
                        continue
                    if len(blob) != man["size"] or \
                            xxh128_many({0: blob})[0] != man["hash"]:
                        bad(f"{name}: kept {k}: its blob is not whole")
                        continue
                    kept.setdefault(sha(blob), []).append(
                        (name, p[1], int(p[2][1:-5])))
        n_bucket = n_kept = n_lost = n_synced = n_replaced = 0
        n_kept_new = 0
        for a in acks:
            h = a["sha"]
            if a["synced"]:
                n_synced += 1
            if h in where:
                n_bucket += 1
                a["at"] = where[h]
                if len(where[h]) > 1:
                    bad(f"{a['mount']}: {a['ds']}: one content in "
                        f"{len(where[h])} versions {where[h]}")
                if any(ds != a["ds"] for ds, _ in where[h]):
                    bad(f"{a['mount']}: content for {a['ds']} in "
                        f"{where[h]}")
            elif any(m == a["mount"] and ds == a["ds"]
                     for m, ds, _ in kept.get(h, [])):
                n_kept += 1
                # begun after SIGCONT: the stalled writer's clock still
                # gave it the lease (it was rewritten expired, not run out)
                if any(m == a["mount"] and t < a["t_try"] < t + SETTLE_S
                       for m, t in self.conts):
                    n_kept_new += 1
                if a["synced"]:
                    bad(f"{a['mount']}: {a['ds']} {h[:12]}: synced, yet "
                        f"only kept, not in the bucket")
            else:
                n_lost += 1
                pend = self.pending.get(a["mount"], [])
                v = a["version"]
                other = bucket.get((a["ds"], int(v[1:]))) \
                    if v[1:].isdigit() else None
                if other:
                    n_replaced += 1
                    src = tried.get(other[0])
                    pend = [f"{v} holds {src[0] if src else 'unknown'}'s "
                            f"content, put by {self.who(other[1][:32])} "
                            f"({other[1][:8]}/{other[1][33:]})"]
                bad(f"{a['mount']}: {a['ds']} {h[:12]} ({a['kind']}, "
                    f"{v}, acknowledged at {a['t_ack']:.3f}): "
                    + ("REPLACED: " if other else
                       "LOST: neither in the bucket nor kept") +
                    (f"{pend[0]}" if other else
                     f" ({len(pend)} keys still in its outbox)"
                     if pend else ""))
        for name, ds, t in mkdirs:
            k = f"datasets/{ds}/dataset.json"
            if k not in objs and k not in kept_objs[name]:
                bad(f"{name}: mkdir {ds} (acknowledged at {t:.3f}): no "
                    "dataset.json in the bucket or kept")
        # nothing replaced: each manifest is what one worker wrote, from
        # its own mount, under a generation that mount held
        replaced = n_replaced
        gens = {}       # generation -> [(t_try, t_ack)] of its versions
        by_sha = {a["sha"]: a for a in acks}
        for (ds, n), (h, tag, man) in sorted(bucket.items()):
            src = tried.get(h)
            if src is None or src[1] != ds:
                replaced += 1
                bad(f"bucket: {ds}/v{n}: content no worker wrote whole "
                    f"for {ds}")
                continue
            mount = src[0]
            mid, _, g = tag.partition("/")
            if man["lineage"].get("pid") != pid[mount]:
                replaced += 1
                bad(f"bucket: {ds}/v{n}: written by pid "
                    f"{man['lineage'].get('pid')}, not {mount}'s worker")
            if mid not in self.ids[mount]:
                replaced += 1
                bad(f"bucket: {ds}/v{n}: {mount}'s content, put by "
                    f"{self.who(mid) or mid[:8]} (tag {tag})")
            if not g.isdigit():
                bad(f"bucket: {ds}/v{n}: no writer tag ({tag!r})")
                continue
            g = int(g)
            if g in self.gen_owner and self.gen_owner[g] != mid:
                bad(f"bucket: {ds}/v{n}: put under generation {g} by "
                    f"{mid[:8]}; the lease gave {g} to "
                    f"{self.gen_owner[g][:8]}")
            a = by_sha.get(h)
            if a:
                gens.setdefault(g, []).append((a["t_try"], a["t_ack"],
                                               f"{ds}/v{n}"))
        # no version exported under an older generation was begun after
        # one exported under a newer generation was acknowledged
        order = sorted(gens)
        for i, g in enumerate(order):
            later = [x for g2 in order[i + 1:] for x in gens[g2]]
            if not later:
                break
            first = min(later, key=lambda x: x[1])
            for t_try, _, what in gens[g]:
                if t_try > first[1]:
                    bad(f"one writer: {what} (generation {g}) begun "
                        f"{t_try - first[1]:.3f} s after {first[2]} "
                        f"(a newer generation) was acknowledged")
        # a writer that knew it had lost its lease accepted nothing new
        for name, t0, t1 in self.strict:
            for a in acks:
                if a["mount"] == name and a["t_try"] > t0 and \
                        (t1 is None or a["t_try"] < t1):
                    bad(f"{name}: accepted {a['ds']} {a['sha'][:12]} "
                        f"begun after SIGCONT past its lease")
        # a dataset.json is the newest writer's: none put under an older
        # generation than one of its dataset's versions
        for k, (body, meta) in objs.items():
            p = k.split("/")
            if len(p) != 3 or p[0] != "datasets" or p[2] != "dataset.json":
                continue
            g = meta.get("x-amz-meta-mlfs-writer", "").partition("/")[2]
            newer = [(int(t.partition("/")[2]), f"v{n}")
                     for (ds, n), (_, t, _) in bucket.items()
                     if ds == p[1] and t.partition("/")[2].isdigit()]
            if g.isdigit() and newer and int(g) < max(newer)[0]:
                bad(f"bucket: {k} put under generation {g}, after "
                    f"{p[1]}/{max(newer)[1]} under {max(newer)[0]}")
        # a manifest PUT twice with success: a writer's retry of its own
        # claim (s3s_create replaces an object of its own mount id), or
        # another's; the content and tag checks above tell which
        puts = s3.manifest_puts(self.prefix)
        reputs = sum(1 for n in (puts or {}).values() if n > 1)
        # the fresh third mount
        want = {}
        for (ds, n), (h, _, _) in bucket.items():
            want.setdefault(ds, {})[f"v{n}"] = h
        for phase, view in (("first view", self.c_first),
                            ("after its check", self.c_after)):
            for ds, vs in want.items():
                got = view.get(ds, {})
                missing = sorted(set(vs) - set(got), key=lambda v:
                                 int(v[1:]))
                if missing:
                    bad(f"C ({phase}): {ds} lacks {missing}")
                extra = sorted(set(got) - set(vs) - {"latest"})
                if extra:
                    bad(f"C ({phase}): {ds} shows {extra}, not in the "
                        "bucket")
        for ds, vs in want.items():
            got = self.c_after.get(ds, {})
            for v, h in vs.items():
                if v in got and got[v] != h:
                    bad(f"C: {ds}/{v}: bytes differ from the bucket's")
            top = max(vs, key=lambda v: int(v[1:]))
            if got.get("latest") != top:
                bad(f"C: {ds}/latest -> {got.get('latest')}, highest "
                    f"{top}")
        # daemons
        for name, m in self.m.items():
            for line in m.stderr().splitlines():
                if "Sanitizer" in line or "runtime error" in line:
                    bad(f"{name}: {line.strip()}")
                    break
        self.counts = {
            "acked": len(acks), "synced": n_synced, "in_bucket": n_bucket,
            "kept": n_kept, "kept_begun_after_sigcont": n_kept_new,
            "lost": n_lost, "replaced": replaced,
            "mkdirs": len(mkdirs), "bucket_versions": len(bucket),
            "generations": len(self.gen_owner), "manifest_reputs": reputs,
            "refused": sum(1 for n in "AB" for op in self.worker_log(n)
                           if op[1] == "fail" and
                           op[5] == str(errno.EROFS)),
            "s3rver_partial_reads": self.partial_reads,
            "problems": len(self.problems)}
        (self.tmp / "timeline.txt").write_text(
            "".join(f"{t:.3f} {w}\n" for t, w in self.timeline) +
            "".join(f"{t:.3f} lease {o[:8]} gen {g} expires {e}\n"
                    for t, o, g, e in self.leases))
        return self.counts


KINDS = ["stall", "kill_writer", "kill_takeover", "handoff", "stall",
         "restart_writer", "kill_reader", "stall", "restart_reader"]
RANDOM_KINDS = ["stall", "stall", "kill_writer", "kill_takeover",
                "kill_reader", "handoff", "restart_writer",
                "restart_reader"]


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rnd = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="mlfs-s3w-"))
    own = None
    if os.environ.get("MLFS_S3_ENV"):
        env_file = Path(os.environ["MLFS_S3_ENV"])
    else:
        own = tmp / "s3"
        r = subprocess.run(["bash", str(ROOT / "tests/s3/start.sh"),
                            str(own)], capture_output=True, text=True,
                           timeout=600)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1
        env_file = own / "env"
    totals = {"trials": 0}
    failed = False
    try:
        s3 = S3(_s3_env_file(env_file), env_file.parent / "gateway.log")
        for t in range(trials):
            events = [KINDS[t % len(KINDS)]] + \
                [rnd.choice(RANDOM_KINDS) for _ in range(2)]
            if t % 5 == 4:
                events.insert(1, "stall_real")
            d = tmp / f"t{t + 1}"
            d.mkdir()
            trial = Trial(s3, d, t, seed, random.Random(rnd.random()),
                          events[0])
            try:
                counts = trial.run(events)
            except Exception as e:      # noqa: BLE001
                trial.problems.append(f"the trial broke: {e!r}")
                counts = {"problems": len(trial.problems)}
            totals["trials"] += 1
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            failed |= bool(trial.problems)
            print(f"trial {t + 1} ({' '.join(events)}): " +
                  ", ".join(f"{k} {v}" for k, v in counts.items()) +
                  "".join("\n  " + p for p in trial.problems), flush=True)
            if not trial.problems:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        if own is not None:
            subprocess.run(["bash", str(ROOT / "tests/s3/stop.sh"),
                            str(own)], capture_output=True)
    print(json.dumps(totals))
    if failed:
        print(f"kept for a look: {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
