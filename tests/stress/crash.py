#!/usr/bin/python3
"""A crash campaign (issue 10, point 7): N trials of kill -9 of the daemon
at a random moment while a worker copies, appends, moves aliases,
removes datasets, starts training jobs and removes finished jobs through
the mount.  After each crash: remount (the index
is rebuilt), then check that

  - every acknowledged version (its close returned 0) is there, byte for
    byte, unless an acknowledged rmdir removed its dataset after it;
  - no partial version is visible: every version holds content the
    worker wrote whole;
  - `latest` names the highest version;
  - a dataset whose rmdir was cut short is there whole or not at all;
  - every training job the worker started (its spec's close returned 0)
    is there, unless an acknowledged rmdir removed it, and has ended
    (succeeded, or failed: a daemon stopped under it) once remounted;
    a removed job stays removed, one cut short is whole or gone;
  - every model version is whole (model and meta.json read and parse),
    names a job the worker started, and `latest` is the highest.

Not part of the default suite: run by hand or nightly.

  /usr/bin/python3 tests/stress/crash.py [TRIALS] [SEED]

Needs a build (MLFS_BUILD, default build-test) and root (FUSE).  Prints
one line per trial and the counts at the end; exits 1 if any check
failed.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import Mount  # noqa: E402

WORKER = r'''
import errno, hashlib, json, os, random, sys
mnt, log, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
state = {}                       # dataset -> its current content
logf = open(log, "a")
for name in os.listdir(os.path.join(mnt, "datasets")):   # a remount's
    d = os.path.join(mnt, "datasets", name)
    vs = [v for v in os.listdir(d) if v[1:].isdigit()]
    state[name] = open(os.path.join(d, "data.csv"), "rb").read() \
        if vs else None

def note(*words):
    logf.write(" ".join(map(str, words)) + "\n")
    logf.flush()
    os.fsync(logf.fileno())

def h(b):
    return hashlib.sha256(b).hexdigest()

def rows(n):
    return "".join(f"{rnd.random():.6f},{rnd.randrange(3)}\n"
                   for _ in range(n)).encode()

for op in range(100000):
    name = f"d{rnd.randrange(4)}"
    d = os.path.join(mnt, "datasets", name)
    k = rnd.randrange(12)
    if k == 11:                              # rmdir a finished job
        jd = os.path.join(mnt, "jobs")
        done = []
        for j in os.listdir(jd):
            try:
                st = open(os.path.join(jd, j, "status")).read()
            except OSError:
                continue
            if st.startswith(("succeeded", "failed")):
                done.append(j)
        if done:
            j = rnd.choice(sorted(done))
            note("tryrmjob", j)
            os.rmdir(os.path.join(jd, j))
            note("rmjob", j)
        continue
    if name not in state:
        os.mkdir(d)
        state[name] = None
        note("mkdir", name)
        continue
    if k < 4 or state[name] is None:         # cp: a whole new content
        body = b"x,y\n" + rows(rnd.randrange(1, 2000))
        note("try", name, h(body))
        with open(os.path.join(d, "data.csv"), "wb") as f:
            f.write(body)
        state[name] = body
        note("ack", name, h(body))
    elif k < 7:                              # append
        add = rows(rnd.randrange(1, 50))
        body = state[name] + add
        note("try", name, h(body))
        with open(os.path.join(d, "data.csv"), "ab") as f:
            f.write(add)
        state[name] = body
        note("ack", name, h(body))
    elif k < 9:                              # move an alias
        vs = [v for v in os.listdir(d) if v[1:].isdigit()]
        if vs:
            v = rnd.choice(vs)
            tmp = f"next-prod{rnd.randrange(10**6)}"    # as ln -sfn does
            os.symlink(v, os.path.join(d, tmp))
            os.rename(os.path.join(d, tmp), os.path.join(d, "prod"))
            note("alias", name, v)
    elif k == 10:                            # train on it
        job = f"j{seed}-{op}"
        note("trytrain", job, name)
        with open(os.path.join(mnt, "train", job + ".json"), "w") as f:
            f.write(json.dumps({"dataset": name, "algorithm": "logistic",
                                "model": f"m{rnd.randrange(2)}",
                                "label": "y"}))
        note("train", job, name)
    else:                                    # rmdir the dataset
        for a in ("prod",):
            try:
                os.unlink(os.path.join(d, a))
            except FileNotFoundError:
                pass
        note("tryrm", name)
        try:
            os.rmdir(d)
        except OSError as e:                 # a model or a job uses it
            assert e.errno == errno.EBUSY, e
            note("busy", name)
            continue
        del state[name]
        note("rm", name)
'''


def versions(d):
    return sorted((p for p in os.listdir(d) if p[1:].isdigit()),
                  key=lambda v: int(v[1:]))


def check(m, log):
    """Problems found after a remount, as strings."""
    tried, acked, removing = {}, {}, set()
    for line in Path(log).read_text().splitlines():
        w = line.split()
        if w[0] == "mkdir":
            tried.setdefault(w[1], set())
            acked[w[1]] = set()
            removing.discard(w[1])
        elif w[0] == "try":
            tried.setdefault(w[1], set()).add(w[2])
        elif w[0] == "ack":
            acked.setdefault(w[1], set()).add(w[2])
        elif w[0] == "tryrm":
            removing.add(w[1])
        elif w[0] == "rm":
            acked.pop(w[1], None)
            tried.pop(w[1], None)
            removing.discard(w[1])
    bad = check_jobs(m, log)
    present = set(os.listdir(m.mnt / "datasets"))
    for name in sorted(set(acked) | present):
        d = m.mnt / "datasets" / name
        if name not in present:
            if name not in removing and acked.get(name):
                bad.append(f"{name}: gone, with acknowledged versions")
            continue
        vs = versions(d)
        seen = set()
        for v in vs:
            body = (d / v / "data.csv").read_bytes()
            hv = hashlib.sha256(body).hexdigest()
            seen.add(hv)
            if hv not in tried.get(name, set()):
                bad.append(f"{name}/{v}: content never written whole")
        for hv in acked.get(name, set()) - seen:
            bad.append(f"{name}: acknowledged {hv[:12]} missing")
        if os.path.islink(d / "prod") and \
                os.readlink(d / "prod") not in vs:
            bad.append(f"{name}: prod -> {os.readlink(d / 'prod')}, "
                       "not a version")
        if vs and os.readlink(d / "latest") != vs[-1]:
            bad.append(f"{name}: latest -> {os.readlink(d / 'latest')}, "
                       f"highest {vs[-1]}")
    return bad


def check_jobs(m, log):
    """Problems with the jobs and models after a remount."""
    started, tried, removed, removing = set(), set(), set(), set()
    for line in Path(log).read_text().splitlines():
        w = line.split()
        if w[0] == "trytrain":
            tried.add(w[1])
        elif w[0] == "train":
            started.add(w[1])
        elif w[0] == "tryrmjob":
            removing.add(w[1])
        elif w[0] == "rmjob":
            removed.add(w[1])
            removing.discard(w[1])
    bad = []
    jobs = set(os.listdir(m.mnt / "jobs"))
    for j in sorted(started - removed - removing - jobs):
        bad.append(f"jobs/{j}: started, never removed, gone")
    for j in sorted(removed & jobs):
        bad.append(f"jobs/{j}: removed, back after the crash")
    for j in sorted(jobs & tried):
        try:
            st = (m.mnt / "jobs" / j / "wait").read_text()
        except OSError as e:
            bad.append(f"jobs/{j}: unreadable: {e}")
            continue
        if not st.startswith(("succeeded", "failed")):
            bad.append(f"jobs/{j}: ended as {st.strip()!r}")
    for mdl in sorted(os.listdir(m.mnt / "models")):
        d = m.mnt / "models" / mdl
        vs = versions(d)
        for v in vs:
            try:
                meta = json.loads((d / v / "meta.json").read_text())
                (d / v / "model").read_bytes()
            except (OSError, ValueError) as e:
                bad.append(f"models/{mdl}/{v}: not whole: {e}")
                continue
            job = json.dumps(meta)
            if not any(f'"{j}"' in job for j in tried):
                bad.append(f"models/{mdl}/{v}: names no job started")
        if vs and os.readlink(d / "latest") != vs[-1]:
            bad.append(f"models/{mdl}: latest -> "
                       f"{os.readlink(d / 'latest')}, highest {vs[-1]}")
    return bad


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rnd = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="mlfs-crash-"))
    m = Mount(tmp).start()
    log = tmp / "ops.log"
    totals = {"trials": 0, "acked": 0, "problems": 0}
    try:
        for t in range(trials):
            w = subprocess.Popen([sys.executable, "-c", WORKER, str(m.mnt),
                                  str(log), str(seed * 1000 + t)],
                                 stdout=subprocess.DEVNULL,
                                 stderr=open(tmp / "worker.err", "a"))
            time.sleep(rnd.uniform(0.05, 1.5))
            m.kill9()
            w.wait(timeout=60)
            m.start()
            bad = check(m, log)
            acked = sum(1 for ln in log.read_text().splitlines()
                        if ln.startswith("ack "))
            totals["trials"] += 1
            totals["acked"] = acked
            totals["problems"] += len(bad)
            print(f"trial {t + 1}: {acked} acknowledged so far, "
                  f"{len(bad)} problems" + "".join("\n  " + b for b in bad),
                  flush=True)
    finally:
        m.stop(check=False)
    # how each worker ended: killed mid-call (the mount went away) is
    # expected; anything else is the worker's own bug, worth a look
    errs = (tmp / "worker.err").read_text() if (tmp / "worker.err").exists() \
        else ""
    totals["trains"] = sum(1 for ln in log.read_text().splitlines()
                           if ln.startswith("train "))
    totals["worker_errors"] = sorted(
        {ln for ln in errs.splitlines() if "Error" in ln})
    print(json.dumps(totals))
    if not totals["problems"]:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if totals["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
