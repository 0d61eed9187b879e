"""features/<fs>/online keeps bounded records (issue 13, point 4): an
entity's events within its longest window plus allowed_lateness, the fold
of the older ones and the anchors of last features.  Through a mount:
online, join (the whole history) and offline.csv agree on events spread
over weeks, streamed out of order, with a late event past the lateness."""
import json
import random
import time

from conftest import wait_job
from test_features import sh

SPEC = {"entity": "k", "timestamp": "ts", "allowed_lateness": "1d",
        "features": [
            {"name": "n_1d", "agg": "count", "window": "1d"},
            {"name": "sum_2d", "column": "x", "agg": "sum", "window": "2d"},
            {"name": "mean_all", "column": "x", "agg": "mean"},
            {"name": "std_all", "column": "x", "agg": "std"},
            {"name": "n_all", "agg": "count"},
            {"name": "tag", "column": "tag", "type": "categorical"}]}


def events(now):
    rnd = random.Random(13)
    rows = []
    for k in ("e1", "e2", "e3"):
        t = now - 40 * 86400
        while t < now - 3600:
            t += rnd.randrange(600, 5 * 3600)
            late = rnd.randrange(0, 80000) if rnd.random() < 0.15 else 0
            tag = rnd.choice(["red", "green", "blue", ""])
            rows.append((min(t, now - 3600) - late, k,
                         rnd.randrange(0, 100), tag))
    # arrival order: by time, give or take the late ones
    rows.sort(key=lambda r: r[0] + (80000 if r[0] % 7 == 0 else 0))
    return rows


def stream(d, rows, per_write=150):
    for i in range(0, len(rows), per_write):
        text = "ts,k,x,tag\n" + "".join(
            f"{t},{k},{x},{tag}\n" for t, k, x, tag in rows[i:i + per_write])
        r = sh(f"cat > {d}/events <<'EOF2'\n{text}EOF2")
        assert r.returncode == 0, r.stderr


def online_against_join(d, skip=(), keys=("e1", "e2", "e3")):
    for k in keys:
        head, row = (d / "online" / k).read_text().splitlines()
        as_of = row.split(",")[1]
        r = sh(f"echo {k},{as_of} > {d}/join; cat {d}/join")
        got = r.stdout.splitlines()
        assert got[0].split(",")[2:] == head.split(",")[2:]
        want = [v for i, v in enumerate(row.split(",")) if i - 2 not in skip]
        have = [v for i, v in enumerate(got[1].split(",")) if i - 2 not in skip]
        assert have == want, k


def test_bounded_records_answer_as_every_event_does(mlfs):
    now = int(time.time())
    d = mlfs.mnt / "features" / "rec"
    d.mkdir()
    (d / "spec").write_text(json.dumps(SPEC))
    rows = events(now)
    assert len(rows) > 500
    stream(d, rows)
    # online (the records) against join (the whole log), as of now
    online_against_join(d)
    # a sync: offline.csv against join at every instant it has
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "rec-sync-1") == "succeeded\n"
    off = (d / "offline.csv").read_text().splitlines()
    assert len(off) > 500
    keys = "\n".join(",".join(x.split(",")[:2]) for x in off[1:]) + "\n"
    r = sh(f"cat > {d}/join <<'EOF2'\n{keys}EOF2\ncat {d}/join")
    assert r.stdout.splitlines() == off
    online_against_join(d)
    # an event 30 days old, long past the lateness: no window moves; the
    # aggregates without one take it (std may differ in its last bits:
    # it is folded out of time order)
    before = (d / "online" / "e1").read_text().splitlines()[1].split(",")
    r = sh(f"printf 'ts,k,x,tag\\n{now - 30 * 86400},e1,1000,\\n' "
           f"> {d}/events")
    assert r.returncode == 0, r.stderr
    after = (d / "online" / "e1").read_text().splitlines()[1].split(",")
    assert after[2:4] == before[2:4]
    assert int(after[6]) == int(before[6]) + 1
    assert float(after[4]) > float(before[4])
    online_against_join(d, skip=(3,))
    # the next sync places it in time and counts it as late in stats
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "rec-sync-2") == "succeeded\n"
    st = json.loads((d / "stats").read_text())
    assert st["late"] == 1 and st["refused"] == 0
    assert f"e1,{now - 30 * 86400}," in (d / "offline.csv").read_text()


def test_records_mid_stream_are_seen_kept_and_rebuilt(mlfs):
    """An open stream's records: a read and a listing see them at once, a
    clean remount keeps them, and a crash with the stream still open
    loses nothing (the log rebuilds them)."""
    now = int(time.time())
    d = mlfs.mnt / "features" / "mem"
    d.mkdir()
    (d / "spec").write_text(json.dumps(SPEC))
    f = open(d / "events", "w", buffering=1)
    f.write("ts,k,x,tag\n")
    seen = {}
    for i in range(60):
        k = f"m{i % 7}"
        f.write(f"{now - 7200 + 60 * i},{k},{i},t{i % 3}\n")
        # each line is one write: in the store before the write returns
        row = (d / "online" / k).read_text().splitlines()[1].split(",")
        assert row[-1] == f"t{i % 3}" and int(row[6]) == i // 7 + 1
        seen[k] = row[2:]
        if i == 30:  # a listing mid-stream
            assert sorted(p.name for p in (d / "online").iterdir()) == \
                sorted(seen)
    # a crash with the stream still open: the log has every event
    mlfs.kill9()
    try:
        f.close()
    except OSError:
        pass  # the mount is gone
    mlfs.start()
    for k, want in seen.items():
        row = (d / "online" / k).read_text().splitlines()[1].split(",")
        assert row[2:] == want, k
    with open(d / "events", "w") as g:
        g.write(f"ts,k,x,tag\n{now - 60},new,5,t9\n")
    mlfs.restart()
    assert sorted(p.name for p in (d / "online").iterdir()) == \
        sorted(list(seen) + ["new"])
    for k, want in seen.items():
        row = (d / "online" / k).read_text().splitlines()[1].split(",")
        assert row[2:] == want, k
    online_against_join(d, keys=list(seen) + ["new"])
