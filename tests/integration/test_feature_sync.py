"""features/<fs>/ctl sync, offline.csv and stats (issue 13, points 3, 6
and 7): the sync job runs as the writer and publishes a version; values
are checked by hand around window edges."""
import errno
import json
import os

import pytest

from conftest import NOBODY, as_user, wait_job
from test_features import SPEC, TXNS, make_set, sh, versions
from test_s3 import fresh, s3mount

OFFLINE = ("customer_id,ts,spend_7d,txns_1h,country,amount_last\n"
           "c1,2024-01-01T00:00:00Z,10.5,1,fr,10.5\n"
           "c1,2024-01-02T00:00:00Z,17.5,1,fr,7\n"
           "c2,2024-01-01T01:00:00Z,3,1,de,3\n")


def synced(mlfs, spec=SPEC, name="cust"):
    d = make_set(mlfs, name)
    (d / "spec").write_text(json.dumps(spec))
    r = sh(f"echo sync > {d}/ctl")
    assert r.returncode == 0, r.stderr
    job = (d / "ctl").read_text().splitlines()[-1]
    assert job == f"jobs/{name}-sync-1"
    assert wait_job(mlfs.mnt, f"{name}-sync-1") == "succeeded\n"
    return d


def test_sync_publishes_offline_csv_and_stats_as_a_version(mlfs):
    d = synced(mlfs)
    assert versions(d) == ["v1", "v2"]
    assert (d / "offline.csv").read_text() == OFFLINE
    assert (d / "v2" / "offline.csv").read_text() == OFFLINE
    assert (d / "v1" / "offline.csv").read_text() == ""
    st = json.loads((d / "stats").read_text())
    assert st["rows"] == 3 and st["entities"] == 2 and st["events"] == 3
    f = st["features"]["spend_7d"]
    assert (f["count"], f["missing"], f["min"], f["max"]) == (3, 0, 3, 17.5)
    assert abs(f["mean"] - 31 / 3) < 1e-12
    assert st["features"]["amount_last"]["outside"] == 0
    assert json.loads((d / "v2" / "spec").read_text()) == \
        json.loads((d / "v1" / "spec").read_text())
    rec = json.loads(sh(f"cat {mlfs.mnt}/jobs/cust-sync-1/spec").stdout)
    assert rec == {"feature_set": "cust", "version": 1, "command": "sync"}
    # a second sync is a second job and a new version
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "cust-sync-2") == "succeeded\n"
    assert versions(d) == ["v1", "v2", "v3"]


def test_the_source_version_a_sync_read_stays(mlfs):
    synced(mlfs)
    t = mlfs.mnt / "datasets" / "transactions"
    r = sh(f"rmdir {t}/v1")
    assert r.returncode != 0 and "busy" in r.stderr, r.stderr


def test_materialize_limits_the_range(mlfs):
    d = make_set(mlfs)
    (d / "spec").write_text(json.dumps(SPEC))
    r = sh(f"echo materialize 2024-01-01T00:30:00Z 2024-01-01T12:00:00Z "
           f"> {d}/ctl")
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "cust-sync-1") == "succeeded\n"
    # rows in the range; the history stops at END
    assert (d / "offline.csv").read_text() == (
        "customer_id,ts,spend_7d,txns_1h,country,amount_last\n"
        "c2,2024-01-01T01:00:00Z,3,1,de,3\n")


def test_bad_commands_fail_the_write_and_start_nothing(mlfs):
    d = make_set(mlfs)
    r = sh(f"echo sync > {d}/ctl")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert "no spec yet" in mlfs.errors()
    (d / "spec").write_text(json.dumps(SPEC))
    for cmd, why in [("resync", "unknown command"),
                     ("materialize 2024-01-02", "two times"),
                     ("materialize soon later", "START: not a time"),
                     ("materialize 2024-01-02 2024-01-01", "END is before")]:
        r = sh(f"echo {cmd} > {d}/ctl")
        assert r.returncode != 0 and "Invalid argument" in r.stderr, cmd
        assert why in mlfs.errors(), (cmd, mlfs.errors())
    assert not os.path.exists(mlfs.mnt / "jobs" / "cust-sync-1")
    assert versions(d) == ["v1"]


def test_a_bad_event_fails_the_job_and_publishes_nothing(mlfs):
    t = mlfs.mnt / "datasets" / "transactions"
    d = make_set(mlfs)
    (t / "data.csv").write_text(TXNS + "c3,2024-01-03T00:00:00Z,500,fr\n")
    spec = json.loads(json.dumps(SPEC))
    spec["features"][3]["on_violation"] = "reject"
    (d / "spec").write_text(json.dumps(spec))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    st = wait_job(mlfs.mnt, "cust-sync-1")
    assert st.startswith("failed: transactions: 5:3: feature "
                         "\"amount_last\": 500 outside [0, 100]"), st
    assert versions(d) == ["v1"]
    assert (d / "offline.csv").read_text() == ""


def test_sync_runs_as_the_writer_with_their_rights(mlfs_factory):
    m = mlfs_factory(opts=["allow_other"], public=True)
    d = make_set(m)
    (d / "spec").write_text(json.dumps(SPEC))
    # another user may not sync root's set
    r = as_user(["bash", "-c", f"echo sync > {d}/ctl"])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # nor sync their own set from a dataset they cannot read
    os.chmod(m.mnt / "datasets" / "transactions", 0o700)
    theirs = m.mnt / "features" / "theirs"
    assert as_user(["mkdir", str(theirs)]).returncode == 0
    r = as_user(["bash", "-c", f"echo '{json.dumps(SPEC)}' > {theirs}/spec"])
    assert r.returncode == 0, r.stderr
    r = as_user(["bash", "-c", f"echo sync > {theirs}/ctl"])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    # with the right to read it, the job is theirs
    os.chmod(m.mnt / "datasets" / "transactions", 0o755)
    r = as_user(["bash", "-c", f"echo sync > {theirs}/ctl"])
    assert r.returncode == 0, r.stderr
    assert wait_job(m.mnt, "theirs-sync-1") == "succeeded\n"
    assert os.stat(m.mnt / "jobs" / "theirs-sync-1").st_uid == NOBODY
    assert (theirs / "offline.csv").read_text() == OFFLINE


def test_a_synced_set_survives_the_s3_store(mlfs_factory, s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = synced(w)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.stop()
    r = fresh(mlfs_factory, s3server, w.prefix, "r")
    d = r.mnt / "features" / "cust"
    assert versions(d) == ["v1", "v2"]
    assert (d / "offline.csv").read_text() == OFFLINE
    assert json.loads((d / "v2" / "stats").read_text())["rows"] == 3
    r = sh(f"echo c1,2024-01-02 > {d}/join; cat {d}/join")
    assert r.stdout.splitlines()[1] == "c1,2024-01-02,17.5,1,fr,7"
    # the fresh mount's index loads the online store from the history
    assert sorted(os.listdir(d / "online")) == ["c1", "c2"]


def test_join_gives_each_row_the_features_as_of_its_time(mlfs):
    d = synced(mlfs)
    r = sh(f"printf 'c1,2024-01-01T00:00:00Z\\nc1,2024-01-01T23:59:59Z\\n"
           f"c1,2024-01-02T00:00:00Z\\nc2,2024-01-01T00:59:59Z\\n"
           f"c1,1700000000\\nnobody,2024-01-02\\n' > {d}/join; "
           f"cat {d}/join")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "customer_id,ts,spend_7d,txns_1h,country,amount_last\n"
        "c1,2024-01-01T00:00:00Z,10.5,1,fr,10.5\n"
        # the 1h count ran out; the 7d sum did not
        "c1,2024-01-01T23:59:59Z,10.5,0,fr,10.5\n"
        "c1,2024-01-02T00:00:00Z,17.5,1,fr,7\n"
        # a second before c2's first event: nothing yet
        "c2,2024-01-01T00:59:59Z,,,,\n"
        # before any event (2023-11-14)
        "c1,1700000000,,,,\n"
        "nobody,2024-01-02,,,,\n")
    # the ttl (30d): stale a second after 30 days past the last event
    r = sh(f"printf 'customer_id,label,ts\\nc1,1,2024-01-31T00:00:00Z\\n"
           f"c1,0,2024-02-01T00:00:01Z\\n' > {d}/join; cat {d}/join")
    assert r.stdout == (
        "customer_id,label,ts,spend_7d,txns_1h,country,amount_last\n"
        "c1,1,2024-01-31T00:00:00Z,0,0,fr,7\n"
        "c1,0,2024-02-01T00:00:01Z,,,,\n"), r.stdout


def test_join_matches_offline_csv_row_for_row(mlfs):
    d = synced(mlfs)
    rows = (d / "offline.csv").read_text().splitlines()
    keys = "\n".join(",".join(r.split(",")[:2]) for r in rows) + "\n"
    r = sh(f"cat > {d}/join <<'EOF2'\n{keys}EOF2\ncat {d}/join")
    assert r.stdout.splitlines() == rows


def test_bad_join_rows_are_answered_in_place(mlfs):
    d = synced(mlfs)
    r = sh(f"printf 'c1,yesterday\\nc1\\nc1,2024-01-02\\n' > {d}/join; "
           f"cat {d}/join")
    assert r.stdout.splitlines() == [
        "customer_id,ts,spend_7d,txns_1h,country,amount_last",
        "error: line 1: \"ts\": \"yesterday\" is not a time (ISO 8601 or "
        "seconds since the epoch)",
        "error: line 2: expected 2 fields (entity, time), got 1",
        "c1,2024-01-02,17.5,1,fr,7"]
    # a pinned version joins with its own history; before a sync, nothing
    assert sh(f"echo c1,2024-01-02 > {d}/v1/join; cat {d}/v1/join"
              ).stdout.splitlines()[1] == "c1,2024-01-02,,,,"


NOTTL = dict(SPEC)
del NOTTL["ttl"]


def test_online_reads_each_entity_as_of_now_and_join_agrees(mlfs):
    d = synced(mlfs, spec=NOTTL)
    assert sorted(os.listdir(d / "online")) == ["c1", "c2"]
    text = (d / "online" / "c1").read_text()
    head, row = text.splitlines()
    assert head == "customer_id,as_of,spend_7d,txns_1h,country,amount_last"
    as_of = row.split(",")[1]
    # long after the last event: the windows are empty, last values stay
    assert row == f"c1,{as_of},0,0,fr,7"
    r = sh(f"echo c1,{as_of} > {d}/join; cat {d}/join")
    assert r.stdout.splitlines()[1] == row
    j = json.loads((d / "online" / "c2.json").read_text())
    assert j == {"customer_id": "c2", "as_of": j["as_of"], "spend_7d": 0,
                 "txns_1h": 0, "country": "de", "amount_last": 3}
    assert not os.path.exists(d / "online" / "c3")
    r = sh(f"cat {d}/online/c3")
    assert r.returncode != 0 and "No such file" in r.stderr


def test_online_keys_that_are_not_names_are_percent_encoded(mlfs):
    t = mlfs.mnt / "datasets" / "transactions"
    t.mkdir()
    (t / "data.csv").write_text(
        "k1,k2,ts,amount\n"
        "\"a/b,c\",x y,2024-01-01T00:00:00Z,1\n"
        ".hidden,é,2024-01-01T00:00:00Z,2\n")
    d = mlfs.mnt / "features" / "odd"
    d.mkdir()
    (d / "spec").write_text(json.dumps(
        {"entity": ["k1", "k2"], "timestamp": "ts", "source": "transactions",
         "features": [{"name": "a", "column": "amount"}]}))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "odd-sync-1") == "succeeded\n"
    names = sorted(os.listdir(d / "online"))
    assert names == ["%2Ehidden,%C3%A9", "a%2Fb%2Cc,x%20y"]
    row = (d / "online" / "a%2Fb%2Cc,x%20y").read_text().splitlines()[1]
    assert row.startswith('"a/b,c",x y,') and row.endswith(",1")


def test_a_new_spec_empties_the_online_store_until_it_is_synced(mlfs):
    d = synced(mlfs, spec=NOTTL)
    assert len(os.listdir(d / "online")) == 2
    # the kernel keeps the name of a key it found (for an hour), but
    # stat and open say the key went with the new spec
    assert (d / "online" / "c1").read_text()
    (d / "spec").write_text(json.dumps(dict(NOTTL, ttl="1d")))
    assert os.listdir(d / "online") == []
    assert not os.path.exists(d / "online" / "c1")
    r = sh(f"cat {d}/online/c1")
    assert r.returncode != 0 and "No such file" in r.stderr
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "cust-sync-2") == "succeeded\n"
    assert sorted(os.listdir(d / "online")) == ["c1", "c2"]
    # the 1d ttl ran out long ago: every feature is missing now
    assert (d / "online" / "c1").read_text().splitlines()[1].endswith(
        ",,,,")


def test_events_reach_online_join_and_the_next_sync(mlfs):
    d = synced(mlfs, spec=NOTTL)
    r = sh(f"printf 'ts,customer_id,amount,country\\n"
           f"2024-01-02T00:30:00Z,c1,2,it\\n"
           f"2024-01-03T00:00:00Z,c3,5,es\\n' > {d}/events")
    assert r.returncode == 0, r.stderr
    # the write returned: the online store and join have them
    assert sorted(os.listdir(d / "online")) == ["c1", "c2", "c3"]
    assert (d / "online" / "c1").read_text().splitlines()[1].endswith(
        ",0,0,it,2")
    r = sh(f"printf 'c1,2024-01-02T00:30:00Z\\nc1,2024-01-02T00:29:59Z\\n"
           f"c3,2024-01-03\\n' > {d}/join; cat {d}/join")
    assert r.stdout.splitlines()[1:] == [
        "c1,2024-01-02T00:30:00Z,19.5,2,it,2",
        "c1,2024-01-02T00:29:59Z,17.5,1,fr,7",
        "c3,2024-01-03,5,1,es,5"]
    # JSON lines through another handle, then a sync takes everything
    r = sh(f"echo '{{\"customer_id\": \"c2\", \"ts\": 1704070800, "
           f"\"amount\": 1.5}}' >> {d}/events")
    assert r.returncode == 0, r.stderr
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "cust-sync-2") == "succeeded\n"
    off = (d / "offline.csv").read_text().splitlines()
    assert "c1,2024-01-02T00:30:00Z,19.5,2,it,2" in off
    assert "c3,2024-01-03T00:00:00Z,5,1,es,5" in off
    # 1704070800 is 2024-01-01T01:00:00Z, the time of c2's first event:
    # one row for that instant, counting both
    assert "c2,2024-01-01T01:00:00Z,4.5,2,de,1.5" in off
    # online, join and offline agree after the sync too
    rows = [r for r in off[1:]]
    keys = "\n".join(",".join(x.split(",")[:2]) for x in rows) + "\n"
    r = sh(f"cat > {d}/join <<'EOF2'\n{keys}EOF2\ncat {d}/join")
    assert r.stdout.splitlines()[1:] == rows


def test_a_bad_event_row_fails_its_write_and_applies_nothing(mlfs):
    """A write is all of its rows or none (bash's printf writes a line at
    a time, so each case goes through cat, one write)."""
    d = synced(mlfs, spec=NOTTL)
    def vector():  # the row without as_of (now, which moves)
        row = (d / "online" / "c1").read_text().splitlines()[1].split(",")
        return row[:1] + row[2:]

    before = vector()
    for rows, where in [
            ("customer_id,ts,amount\\nc1,2024-01-05,1\\nc1,soon,2\\n",
             "events:3:2: \"ts\": not a time"),
            ("customer_id,ts,amount\\nc1,2024-01-05,1\\nc1,2024-01-06\\n",
             "events:3: record has 2 fields, header has 3"),
            ("customer_id,amount\\nc1,1\\n",
             "events:1: the header has no column \"ts\""),
            ("customer_id,ts,amount\\nc1,2024-01-05,lots\\n",
             "\"amount\": \"lots\" is not a number"),
            ('{"customer_id": "c1", "ts": "2024-01-05"}\\n{"ts": 1}\\n',
             "events:2: \"customer_id\": an entity value is needed"),
            ('{"customer_id": "c1", "ts": ]\\n', "events:1:")]:
        # one write (bash's printf writes a line at a time to a file)
        r = sh(f"printf '{rows}' > {mlfs.tmp}/rows; cat {mlfs.tmp}/rows "
               f"> {d}/events")
        assert r.returncode != 0 and "Invalid argument" in r.stderr, rows
        assert where in mlfs.errors(), (where, mlfs.errors())
    assert vector() == before
    assert sorted(os.listdir(d / "online")) == ["c1", "c2"]
    r = sh(f"echo c1,2024-01-05 > {d}/join; cat {d}/join")
    assert r.stdout.splitlines()[1] == "c1,2024-01-05,17.5,0,fr,7"


def test_rows_in_the_logs_order_plain_or_not_agree_everywhere(mlfs):
    """A header in the log's column order: plain rows go to the log as
    they came, quoted ones, CRLF and missing words as their fields; a bad
    row among plain ones still fails its write with its line and column
    and applies nothing."""
    d = synced(mlfs, spec=NOTTL)
    head = b"customer_id,ts,amount,country"
    with open(d / "events", "wb") as f:
        f.write(head + b"\r\n"
                b"c1,2024-01-02T00:30:00Z,2,it\r\n"
                b'"c4",2024-01-03T00:00:00Z,"5",es\n'
                b'c5,2024-01-03T00:00:00Z,NA,"p,t"\n'
                b"c5,2024-01-03T00:10:00Z,4,\n"
                b"c1,2024-01-02T00:40:00Z, n/a ,x\n")
    assert sorted(os.listdir(d / "online")) == ["c1", "c2", "c4", "c5"]
    r = sh(f"printf 'c1,2024-01-02T00:30:00Z\\nc1,2024-01-02T00:40:00Z\\n"
           f"c4,2024-01-03\\nc5,2024-01-03T00:10:00Z\\n' > {d}/join; "
           f"cat {d}/join")
    assert r.stdout.splitlines()[1:] == [
        "c1,2024-01-02T00:30:00Z,19.5,2,it,2",
        "c1,2024-01-02T00:40:00Z,19.5,3,x,2",
        "c4,2024-01-03,5,1,es,5",
        'c5,2024-01-03T00:10:00Z,4,2,"p,t",4']

    def vector(key):  # the row without as_of (now, which moves)
        row = (d / "online" / key).read_text().splitlines()[1].split(",")
        return row[:1] + row[2:]

    before = {k: vector(k) for k in ("c1", "c5")}
    for rows, where in [
            (b"c6,2024-01-05,1,fr\nc1,2024-01-06,1\n",
             "events:3: record has 3 fields, header has 4"),
            (b"c6,2024-01-05,1,fr\nc1,2024-01-06,1,fr,x\n",
             "events:3: record has 5 fields, header has 4"),
            (b"c6,2024-01-05,1,fr\r\nc1,soon,2,fr\r\n",
             'events:3:2: "ts": not a time'),
            (b'c6,2024-01-05,1,fr\nc1,2024-01-06,1"2,fr\n', "events:3:"),
            (b"c6,2024-01-05,1,fr\n,2024-01-06,1,fr\n",
             'events:3:1: "customer_id": an entity value is needed')]:
        with pytest.raises(OSError) as e:
            with open(d / "events", "wb") as f:
                f.write(head + b"\n" + rows)
        assert e.value.errno == errno.EINVAL, rows
        assert where in mlfs.errors(), (where, mlfs.errors())
    assert {k: vector(k) for k in ("c1", "c5")} == before
    assert sorted(os.listdir(d / "online")) == ["c1", "c2", "c4", "c5"]
    # the log as the sync reads it: offline.csv, join and online agree
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "cust-sync-2") == "succeeded\n"
    off = (d / "offline.csv").read_text().splitlines()
    assert 'c5,2024-01-03T00:10:00Z,4,2,"p,t",4' in off
    assert "c1,2024-01-02T00:40:00Z,19.5,3,x,2" in off
    keys = "\n".join(",".join(x.split(",")[:2]) for x in off[1:]) + "\n"
    r = sh(f"cat > {d}/join <<'EOF2'\n{keys}EOF2\ncat {d}/join")
    assert r.stdout.splitlines()[1:] == off[1:]
    for k in ("c1", "c5"):
        assert vector(k) == before[k]


def test_keys_alike_in_their_first_bytes_stay_apart(mlfs):
    """A write's rows are sorted by a radix sort of their keys' first 8
    bytes: keys that share them, or differ only in length, are still
    each their own entity."""
    d = synced(mlfs, spec=NOTTL)
    keys = ["customer-1", "c1", "customer-10", "customer-2", "customer",
            "custome", "customer-1x"]
    # amounts 1, 2, 3 a key, on 2024-01-01 (even places) or 2024-01-02
    rows = "".join(f"{k},2024-01-0{1 + i % 2}T00:00:00Z,{j + 1},fr\n"
                   for j in range(3) for i, k in enumerate(keys))
    with open(d / "events", "wb") as f:
        f.write(("customer_id,ts,amount,country\n" + rows).encode())
    assert sorted(os.listdir(d / "online")) == sorted(keys + ["c2"])
    (mlfs.tmp / "keys").write_text("".join(f"{k},2024-01-02\n"
                                           for k in keys))
    r = sh(f"cat {mlfs.tmp}/keys > {d}/join; cat {d}/join")
    # c1 also has its synced events, 10.5 and 7 (2024-01-02T00:00:00Z,
    # before its new ones of that instant)
    assert r.stdout.splitlines()[1:] == [
        "customer-1,2024-01-02,6,0,fr,3",
        "c1,2024-01-02,23.5,4,fr,3",
        "customer-10,2024-01-02,6,0,fr,3",
        "customer-2,2024-01-02,6,3,fr,3",
        "customer,2024-01-02,6,0,fr,3",
        "custome,2024-01-02,6,3,fr,3",
        "customer-1x,2024-01-02,6,0,fr,3"]
    for k in keys:  # the online records: the same as join at as_of
        row = (d / "online" / k).read_text().splitlines()[1]
        r = sh(f"echo {','.join(row.split(',')[:2])} > {d}/join; "
               f"cat {d}/join")
        assert r.stdout.splitlines()[1] == row


def test_events_survive_a_remount_and_the_s3_store(mlfs_factory, s3server):
    w = s3mount(mlfs_factory, s3server, sub="w")
    d = make_set(w)
    (d / "spec").write_text(json.dumps(NOTTL))
    r = sh(f"printf 'customer_id,ts,amount,country\\n"
           f"c9,2024-02-01T00:00:00Z,4,pt\\n' > {d}/events")
    assert r.returncode == 0, r.stderr
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    w.stop()
    r = fresh(mlfs_factory, s3server, w.prefix, "r")
    d = r.mnt / "features" / "cust"
    assert os.listdir(d / "online") == ["c9"]
    assert (d / "online" / "c9").read_text().splitlines()[1].endswith(
        ",0,0,pt,4")


def test_a_schedule_syncs_by_itself(mlfs):
    import time
    d = make_set(mlfs)
    (d / "spec").write_text(json.dumps(dict(NOTTL, schedule="2s")))
    deadline = time.monotonic() + 30
    while not os.path.exists(mlfs.mnt / "jobs" / "cust-sync-2"):
        assert time.monotonic() < deadline, os.listdir(mlfs.mnt / "jobs")
        time.sleep(0.2)
    assert wait_job(mlfs.mnt, "cust-sync-1") == "succeeded\n"
    assert wait_job(mlfs.mnt, "cust-sync-2") == "succeeded\n"
    rec = json.loads((mlfs.mnt / "jobs" / "cust-sync-1" / "spec").read_text())
    assert rec["command"] == "sync"
    # a spec without a schedule stops it (a sync the last tick started
    # may still run: let it end first)
    (d / "spec").write_text(json.dumps(NOTTL))
    time.sleep(2)
    for j in os.listdir(mlfs.mnt / "jobs"):
        wait_job(mlfs.mnt, j)
    jobs = sorted(os.listdir(mlfs.mnt / "jobs"))
    time.sleep(3)
    assert sorted(os.listdir(mlfs.mnt / "jobs")) == jobs
    vs = sorted(versions(d), key=lambda v: int(v[1:]))
    assert any((d / v / "offline.csv").read_text() == OFFLINE for v in vs)


def orders(mlfs):
    """Rows of customers at times, with a label that the features tell."""
    t = mlfs.mnt / "datasets" / "orders"
    t.mkdir()
    rows = ["customer_id,ts,label"]
    for day in range(2, 22):
        rows.append(f"c1,2024-01-{day:02d}T12:00:00Z,fr")
        rows.append(f"c2,2024-01-{day:02d}T12:00:00Z,de")
    (t / "data.csv").write_text("\n".join(rows) + "\n")
    return t


def test_training_joins_feature_sets_point_in_time(mlfs):
    d = synced(mlfs, spec=NOTTL)
    orders(mlfs)
    spec = {"dataset": "orders", "label": "label", "algorithm": "logistic",
            "feature_sets": ["cust"]}
    r = sh(f"echo '{json.dumps(spec)}' > {mlfs.mnt}/train/fj.json")
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "fj") == "succeeded\n", \
        sh(f"cat {mlfs.mnt}/jobs/fj/log").stdout
    meta = json.loads((mlfs.mnt / "models" / "fj" / "v1" /
                       "meta.json").read_text())
    # the set's features, not its entity or timestamp columns
    assert meta["inputs"] == ["spend_7d", "txns_1h", "country",
                              "amount_last"], meta["inputs"]
    assert meta["feature_sets"] == [
        {"name": "cust", "version": 2, "entity": ["customer_id"],
         "timestamp": "ts"}]
    assert "joined 1 feature set onto 40 rows" in sh(
        f"cat {mlfs.mnt}/jobs/fj/log").stdout
    # the set's version stays while the model does
    r = sh(f"rmdir {d}/v2")
    assert r.returncode != 0 and "busy" in r.stderr, r.stderr


def test_a_training_refuses_feature_sets_it_cannot_join(mlfs):
    d = make_set(mlfs)
    (d / "spec").write_text(json.dumps(NOTTL))
    orders(mlfs)
    for n, (sets, why) in enumerate([(["cust"], "v1 is not synced"),
                                     (["nope"], "no feature set \"nope\""),
                                     ("cust", "must be a list")]):
        spec = {"dataset": "orders", "label": "label",
                "algorithm": "logistic", "feature_sets": sets}
        r = sh(f"echo '{json.dumps(spec)}' > {mlfs.mnt}/train/bad{n}.json")
        assert r.returncode != 0 and "Invalid argument" in r.stderr
        assert why in mlfs.errors(), (why, mlfs.errors())
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "cust-sync-1") == "succeeded\n"
    spec = {"dataset": "transactions", "label": "country",
            "algorithm": "logistic", "feature_sets": ["cust"]}
    r = sh(f"echo '{json.dumps(spec)}' > {mlfs.mnt}/train/bad.json")
    assert r.returncode != 0
    assert "its feature \"country\" is a column of the dataset" in \
        mlfs.errors()


def test_predict_by_key_fetches_the_online_features(mlfs):
    d = synced(mlfs, spec=NOTTL)
    orders(mlfs)
    spec = {"dataset": "orders", "label": "label", "algorithm": "logistic",
            "feature_sets": ["cust"], "model": "who"}
    assert sh(f"echo '{json.dumps(spec)}' > {mlfs.mnt}/train/pk.json"
              ).returncode == 0
    assert wait_job(mlfs.mnt, "pk") == "succeeded\n"
    p = mlfs.mnt / "models" / "who" / "predict"
    # the key alone: features as of now; with a time: as of then
    r = sh(f"printf 'c1\\nc2\\n' > {p}; cat {p}")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert [x.split(",")[0] for x in rows] == ["fr", "de"], rows
    r = sh(f"printf 'customer_id,ts\\nc2,2024-01-01T02:00:00Z\\n"
           f"c1,2024-01-01T00:00:00Z\\n' > {p}; cat {p}")
    assert [x.split(",")[0] for x in r.stdout.splitlines()] == ["de", "fr"]
    # an unknown key has no features: scored on imputed values, not an
    # error; a bad time is an error line in its place
    r = sh(f"printf 'customer_id,ts\\nc1,soon\\nc2,2024-01-05\\n' > {p}; "
           f"cat {p}")
    out = r.stdout.splitlines()
    assert out[0] == "error: line 2: \"ts\": \"soon\" is not a time", out
    assert out[1].startswith("de,")
    # a new spec of the set is not what the model learnt: refused
    (d / "spec").write_text(json.dumps(dict(NOTTL, ttl="1d")))
    r = sh(f"echo c1 > {p}")
    assert r.returncode != 0
    assert "has a new spec since v2" in mlfs.errors()


def test_rmdir_of_a_set_takes_its_log_and_online_store(mlfs):
    d = synced(mlfs, spec=NOTTL)
    r = sh(f"printf 'customer_id,ts,amount\\nc7,2024-03-01,1\\n' > "
           f"{d}/events")
    assert r.returncode == 0, r.stderr
    logs = mlfs.store / "features" / "cust" / "events"
    assert any(logs.rglob("*.csv"))
    for v in versions(d):
        assert sh(f"rmdir {d}/{v}").returncode == 0
    assert sh(f"rmdir {d}").returncode == 0, sh(f"rmdir {d}").stderr
    assert not any(logs.rglob("*.csv")) if logs.exists() else True
    # made again under the name: nothing of the old set comes back
    d.mkdir()
    (d / "spec").write_text(json.dumps(NOTTL))
    assert os.listdir(d / "online") == []


def test_an_untyped_column_of_an_events_only_set_takes_text_later(mlfs):
    """A set fed only by events: the first event of an entity without a
    country does not make the column numeric for it."""
    d = mlfs.mnt / "features" / "ev"
    d.mkdir()
    (d / "spec").write_text(json.dumps(
        {"entity": "customer_id", "timestamp": "ts", "features": [
            {"name": "country", "column": "country"},
            {"name": "n", "agg": "count"}]}))
    for rows in ["customer_id,ts,country\\nc1,1,\\n",
                 "customer_id,ts,country\\nc1,2,gb\\nc2,2,5\\n",
                 "customer_id,ts,country\\nc2,3,fr\\n"]:
        r = sh(f"printf '{rows}' > {mlfs.tmp}/rows; "
               f"cat {mlfs.tmp}/rows > {d}/events")
        assert r.returncode == 0, (rows, r.stderr, mlfs.errors())
    r = sh(f"printf 'c1,2\\nc2,2\\nc2,3\\n' > {d}/join; cat {d}/join")
    assert r.stdout.splitlines()[1:] == ["c1,2,gb,2", "c2,2,5,1",
                                         "c2,3,fr,2"], r.stdout


def test_a_spec_that_refuses_logged_events_leaves_them_out(mlfs):
    """Events logged under one spec, then a spec whose reject bound
    refuses some: the online store, join and the sync leave those out
    (counted in stats as refused) rather than failing."""
    d = mlfs.mnt / "features" / "ev"
    d.mkdir()
    spec = {"entity": "k", "timestamp": "ts", "features": [
        {"name": "total", "column": "x", "agg": "sum"}]}
    (d / "spec").write_text(json.dumps(spec))
    r = sh(f"printf 'k,ts,x\\na,1,5\\na,2,500\\na,3,7\\nb,1,600\\n' "
           f"> {mlfs.tmp}/rows; cat {mlfs.tmp}/rows > {d}/events")
    assert r.returncode == 0, r.stderr
    assert (d / "online" / "a").read_text().splitlines()[1].endswith(",512")
    spec["features"][0].update(max=100, on_violation="reject")
    (d / "spec").write_text(json.dumps(spec))
    # a new event beyond the bound is refused as it comes
    r = sh(f"printf 'k,ts,x\\na,4,1000\\n' > {mlfs.tmp}/rows; "
           f"cat {mlfs.tmp}/rows > {d}/events")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    r = sh(f"printf 'a,3\\nb,3\\n' > {d}/join; cat {d}/join")
    assert r.stdout.splitlines()[1:] == ["a,3,12", "b,3,"], r.stdout
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "ev-sync-1") == "succeeded\n"
    st = json.loads((d / "stats").read_text())
    assert st["refused"] == 2
    assert (d / "offline.csv").read_text().splitlines()[1:] == [
        "a,1,5", "a,3,12"]
    assert sorted(os.listdir(d / "online")) == ["a"]
