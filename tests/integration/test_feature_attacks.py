"""features/: what another user, or a user against the daemon, may try:
other users' sets and sources, hostile events and online names."""
import errno
import json
import os

from conftest import NOBODY, as_user, wait_job
from test_features import SPEC, TXNS, make_set, sh, versions

NOTTL = dict(SPEC)
del NOTTL["ttl"]


def public(mlfs_factory):
    return mlfs_factory(opts=["allow_other"], public=True)


def ush(cmd):
    return as_user(["bash", "-c", cmd])


def test_a_spec_tells_nothing_of_a_source_its_writer_cannot_read(
        mlfs_factory):
    m = public(mlfs_factory)
    t = m.mnt / "datasets" / "secret"
    t.mkdir()
    (t / "data.csv").write_text("who,ts,salary\nann,1,10\n")
    os.chmod(t, 0o700)
    theirs = m.mnt / "features" / "probe"
    assert as_user(["mkdir", str(theirs)]).returncode == 0
    answers = []
    for col in ("salary", "nosuchcolumn"):
        spec = {"entity": "who", "timestamp": "ts", "source": "secret",
                "features": [{"name": "f", "column": col}]}
        r = ush(f"echo '{json.dumps(spec)}' > {theirs}/spec")
        answers.append((r.returncode, r.stderr.replace(col, "X")))
        back = ush(f"cat {theirs}/spec").stdout
        assert "numeric" not in back and "categorical" not in back, back
    # a column that exists and one that does not: the same answer
    assert answers[0] == answers[1], answers


def test_other_users_cannot_write_or_sync_roots_set(mlfs_factory):
    m = public(mlfs_factory)
    d = make_set(m)
    (d / "spec").write_text(json.dumps(NOTTL))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(m.mnt, "cust-sync-1") == "succeeded\n"
    for f in ("spec", "ctl", "events"):
        r = ush(f"echo x > {d}/{f}")
        assert r.returncode != 0 and "Permission denied" in r.stderr, f
    r = ush(f"printf 'customer_id,ts,amount,country\\nc1,5,1,x\\n' "
            f">> {d}/events")
    assert r.returncode != 0
    os.chmod(d, 0o700)
    for f in ("spec", "stats", "offline.csv", "online/c1", "v2/offline.csv",
              "v2/spec", "join"):
        r = ush(f"cat {d}/{f}")
        assert r.returncode != 0 and "Permission denied" in r.stderr, f
    r = ush(f"echo c1,2024-01-02 > {d}/join; cat {d}/join")
    assert r.returncode != 0 and "c1,2024" not in r.stdout
    r = ush(f"echo c1,2024-01-02 > {d}/v2/join; cat {d}/v2/join")
    assert r.returncode != 0 and "c1,2024" not in r.stdout
    r = ush(f"ls {d}/online")
    assert r.returncode != 0
    os.chmod(d, 0o750)
    r = ush(f"cat {d}/offline.csv")
    assert r.returncode != 0


def test_training_on_a_set_its_writer_cannot_read_is_refused(mlfs_factory):
    m = public(mlfs_factory)
    d = make_set(m)
    (d / "spec").write_text(json.dumps(NOTTL))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(m.mnt, "cust-sync-1") == "succeeded\n"
    os.chmod(d, 0o700)
    t = m.mnt / "datasets" / "orders"
    assert as_user(["mkdir", str(t)]).returncode == 0
    r = ush(f"printf 'customer_id,ts,label\\nc1,2024-01-02,a\\n"
            f"c2,2024-01-03,b\\n' > {t}/data.csv")
    assert r.returncode == 0, r.stderr
    spec = {"dataset": "orders", "label": "label", "algorithm": "logistic",
            "feature_sets": ["cust"]}
    r = ush(f"echo '{json.dumps(spec)}' > {m.mnt}/train/steal.json")
    assert r.returncode != 0, r.stderr
    assert "permission denied" in m.errors()


def write_once(mlfs, path, data):
    """data (bytes) in one write(2); the errno, or 0."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
        os.close(fd)
        return 0
    except OSError as e:
        try:
            os.close(fd)
        except OSError:
            pass
        return e.errno


def test_hostile_event_rows_never_hurt_the_daemon(mlfs):
    d = make_set(mlfs)
    (d / "spec").write_text(json.dumps(NOTTL))
    ev = d / "events"
    h = b"customer_id,ts,amount,country\n"
    cases = [
        h + b"c1,2024-01-01," + b"9" * 500000 + b",fr\n",
        h + b"c1,2024-01-01,1," + b"x" * 900000 + b"\n",
        h + b"c\x00x,2024-01-01,1,fr\n",
        h + b"c\xff\xfe,2024-01-01,1,fr\n",
        h + b"c\x1fy,2024-01-01,1,fr\n",
        h + b"k" * 401 + b",2024-01-01,1,fr\n",
        h + b"k" * 400 + b",2024-01-01,1,fr\n",
        h + b"big,1e999,1,fr\n",
        h + b"big2,-1e999,1,fr\n",
        h + b"inf,inf,1,fr\n",
        h + b"ninf,-inf,1,fr\n",
        h + b"nan,nan,1,fr\n",
        h + b"far,1e300,1e308,fr\n",
        h + b"past,-1e300,-1e308,fr\n",
        h + b"y0,0000-01-01,1,fr\n",
        h + b"y9,9999-12-31T23:59:60Z,1,fr\n",
        h + b"numinf,2024-01-01,inf,fr\n",
        h + b"numbig,2024-01-01,1e999,fr\n",
        h + b".,2024-01-01,1,fr\n",
        h + b"..,2024-01-01,1,fr\n",
        h + b"a/b,2024-01-01,1,fr\n",
        h + b"%2F,2024-01-01,1,fr\n",
        h + b"%zz,2024-01-01,1,fr\n",
        b'{"customer_id": "j1", "ts": 1, "amount": ' + b"[" * 5000 +
        b"]" * 5000 + b"}\n",
        b'{"customer_id": "j2", "ts": 1e999}\n',
        b'{"customer_id": "j3", "ts": 1, "amount": 1e999}\n',
        b'{"customer_id": "j4\\u0000", "ts": 1}\n',
        b'{"customer_id": "j5\\u001f", "ts": 1}\n',
        b'{"customer_id": 12, "ts": "2024-01-01"}\n',
        b'{"customer_id": 1.5e300, "ts": -5}\n',
        b'{"customer_id": "\xff", "ts": 1}\n',
        b'{"customer_id": "j6", "ts": 1, "country": {"a": 1}}\n',
        h + b'"unterminated,2024-01-01,1,fr\n',
        h + b'c1,2024-01-01,1,"fr""\n',
    ]
    for data in cases:
        write_once(mlfs, ev, data)
    # the online store answers for everything it took
    names = os.listdir(d / "online")
    for n in names:
        (d / "online" / n).read_text(errors="replace")
        (d / "online" / (n + ".json")).read_text(errors="replace")
    r = sh(f"echo sync > {d}/ctl")
    assert r.returncode == 0, r.stderr
    st = wait_job(mlfs.mnt, "cust-sync-1")
    assert st.startswith(("succeeded", "failed")), st
    (d / "offline.csv").read_bytes()
    (d / "stats").read_text()
    for n in os.listdir(d / "online"):
        (d / "online" / n).read_text(errors="replace")
    r = sh(f"printf 'c1,1e999\\nc1,-1e999\\nc1,inf\\nnan,nan\\n"
           f"k,0000-01-01\\n' > {d}/join; cat {d}/join")
    assert r.returncode == 0, r.stderr


def test_online_names_that_are_not_keys(mlfs):
    d = make_set(mlfs)
    (d / "spec").write_text(json.dumps(NOTTL))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "cust-sync-1") == "succeeded\n"
    for name in ["..", ".", "%2F", "%zz", "%", "%2", "%00", "%1F", "c1%1F",
                 "c%31", "x" * 255, ".json", "c1.json.json", ",", "c1,",
                 ",c1", "%2Ec1", "c1%2C"]:
        r = sh(f"cat '{d}/online/{name}'")
        assert r.returncode != 0, name
    r = sh(f"cat {d}/online/" + "x" * 300)
    assert r.returncode != 0


def test_events_of_an_earlier_spec_keep_their_columns(mlfs):
    """Events logged under a spec whose columns were in another order:
    the online store, join and the sync read each by its own header."""
    d = mlfs.mnt / "features" / "chg"
    d.mkdir()
    a = {"entity": "customer_id", "timestamp": "ts", "features": [
        {"name": "a", "column": "amount", "agg": "sum"},
        {"name": "b", "column": "bonus", "agg": "sum"}]}
    b = dict(a, features=a["features"][::-1])
    (d / "spec").write_text(json.dumps(a))
    assert sh(f"printf 'customer_id,ts,amount,bonus\\nc1,1,10,1000\\n' "
              f"> {d}/events").returncode == 0
    (d / "spec").write_text(json.dumps(b))
    assert sh(f"printf 'customer_id,ts,amount,bonus\\nc1,2,20,2000\\n' "
              f"> {d}/events").returncode == 0
    assert (d / "online" / "c1").read_text().splitlines()[1].endswith(
        ",3000,30")
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "chg-sync-1") == "succeeded\n"
    assert (d / "offline.csv").read_text() == (
        "customer_id,ts,b,a\nc1,1,1000,10\nc1,2,3000,30\n")
    r = sh(f"echo c1,5 > {d}/join; cat {d}/join")
    assert r.stdout.splitlines()[1] == "c1,5,3000,30"
    # a spec with a column fewer: the events still count where they fit
    c = dict(a, features=[a["features"][0]])
    (d / "spec").write_text(json.dumps(c))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(mlfs.mnt, "chg-sync-2") == "succeeded\n"
    assert (d / "offline.csv").read_text() == (
        "customer_id,ts,a\nc1,1,10\nc1,2,30\n")


def test_predict_by_key_reads_sets_as_the_caller(mlfs_factory):
    m = public(mlfs_factory)
    d = make_set(m)
    (d / "spec").write_text(json.dumps(NOTTL))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    assert wait_job(m.mnt, "cust-sync-1") == "succeeded\n"
    t = m.mnt / "datasets" / "orders"
    assert as_user(["mkdir", str(t)]).returncode == 0
    rows = "customer_id,ts,label\\n" + "".join(
        f"c1,2024-01-{x:02d}T12:00:00Z,fr\\nc2,2024-01-{x:02d}T12:00:00Z,de\\n"
        for x in range(2, 12))
    assert ush(f"printf '{rows}' > {t}/data.csv").returncode == 0
    spec = {"dataset": "orders", "label": "label", "algorithm": "logistic",
            "feature_sets": ["cust"], "model": "who"}
    r = ush(f"echo '{json.dumps(spec)}' > {m.mnt}/train/pk.json")
    assert r.returncode == 0, r.stderr
    assert wait_job(m.mnt, "pk") == "succeeded\n"
    p = m.mnt / "models" / "who" / "predict"
    r = ush(f"echo c1 > {p}; cat {p}")
    assert r.returncode == 0 and r.stdout.startswith("fr"), r
    # root closes the set: its online features are no longer theirs
    os.chmod(d, 0o700)
    r = ush(f"echo c1 > {p}; cat {p}")
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    assert "features/cust: permission denied" in m.errors()


def test_rmdir_and_a_new_spec_while_a_sync_runs(mlfs):
    t = mlfs.mnt / "datasets" / "transactions"
    t.mkdir()
    rows = ["customer_id,ts,amount,country"]
    rows += [f"c{i % 5000},{1700000000 + i},{i % 97},x{i % 7}"
             for i in range(200000)]
    (t / "data.csv").write_text("\n".join(rows) + "\n")
    d = mlfs.mnt / "features" / "cust"
    d.mkdir()
    (d / "spec").write_text(json.dumps(NOTTL))
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    (d / "spec").write_text(json.dumps(dict(NOTTL, ttl="1d")))
    st = wait_job(mlfs.mnt, "cust-sync-1")
    assert st.startswith("failed") or st == "succeeded\n", st
    # the history of the spec before is not the new spec's version
    assert json.loads((d / "spec").read_text())["ttl"] == "1d"
    assert (d / "offline.csv").read_text() == ""
    assert sh(f"echo sync > {d}/ctl").returncode == 0
    r = sh(f"rmdir {d}")
    wait_job(mlfs.mnt, "cust-sync-2")
    if r.returncode == 0:
        assert not d.exists()
        d.mkdir()
        assert (d / "offline.csv").read_text() == ""
        assert os.listdir(d / "online") == []
