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
