"""datasets/<d>/prepare through a real mount: a spec of prep steps
(impute, balance) checked as written, run as job <d>-prepare-<n> as the
writer, and published as a version whose lineage names every step."""
import csv
import io
import json
import os
import random
import subprocess
import time
from pathlib import Path

from conftest import as_user
from test_train import sh, wait_job


def imbalanced(d, n_major=200, n_minor=20, seed=1):
    rnd = random.Random(seed)
    rows = ["x1,x2,colour,label"]
    for i in range(n_major):
        x1 = "" if i % 10 == 0 else f"{rnd.gauss(0, 1):.4f}"
        rows.append(f"{x1},{rnd.gauss(0, 1):.4f},"
                    f"{rnd.choice(['red', 'blue'])},no")
    for i in range(n_minor):
        rows.append(f"{rnd.gauss(3, 1):.4f},{rnd.gauss(3, 1):.4f},"
                    f"{rnd.choice(['red', 'green'])},yes")
    d.mkdir()
    (d / "data.csv").write_text("\n".join(rows) + "\n")


def table(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def keyed_mount(mlfs_factory, tmp_path, secret, opts=(), public=False):
    """A mount with -o anon_key= a 0600 file holding secret: (key, mount)."""
    key = tmp_path / "anon.key"
    key.write_bytes(secret)
    os.chmod(key, 0o600)
    return key, mlfs_factory(opts=[*opts, f"anon_key={key}"], public=public)


def test_impute_then_smote_makes_a_version_with_its_lineage(mlfs):
    d = mlfs.mnt / "datasets/shop"
    imbalanced(d)
    spec = {"steps": [{"impute": {"numeric": "median"}},
                      {"balance": {"method": "smote", "k": 5}}],
            "seed": 7}
    r = sh(f"cat > {d}/prepare", input=json.dumps(spec))
    assert r.returncode == 0, r.stderr
    assert (d / "prepare").read_text() == "jobs/shop-prepare-1\n"
    assert wait_job(mlfs.mnt, "shop-prepare-1") == "succeeded\n"
    assert os.readlink(d / "latest") == "v2"
    rows = table(d / "v2/data.csv")
    labels = [r["label"] for r in rows]
    assert labels.count("yes") == labels.count("no") == 200
    assert all(r["x1"] != "" for r in rows)          # imputed
    # the first 220 rows are the input's, in order, imputed
    src = table(d / "v1/data.csv")
    assert [r["x2"] for r in rows[:220]] == [r["x2"] for r in src]
    lineage = json.loads((d / "v2/lineage").read_text())
    assert lineage["made_by"] == "prepare"
    detail = json.loads(lineage["detail"])
    assert detail["from"] == "shop" and detail["version"] == 1
    assert detail["seed"] == 7
    assert [s["plugin"] for s in detail["steps"]] == ["impute", "balance"]
    assert detail["steps"][1]["params"] == {"method": "smote", "k": 5}
    assert "path" not in detail["steps"][0]
    # the same spec and seed: the same rows (a new version or none)
    r = sh(f"cat > {d}/prepare", input=json.dumps(
        {**spec, "dataset": "shop@1", "output": "shop2"}))
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "shop-prepare-2") == "succeeded\n"
    assert (mlfs.mnt / "datasets/shop2/v1/data.csv").read_text() == \
        (d / "v2/data.csv").read_text()
    log = (mlfs.mnt / "jobs/shop-prepare-2/log").read_text()
    assert "step 2 (balance)" in log


BAD = [
    ("{\"steps\": []}", "steps"),
    ("{\"steps\": [{\"nosuch\": {}}]}", "no prep plugin \"nosuch\""),
    ("{\"steps\": [{\"balance\": {\"method\": \"magic\"}}]}", "method"),
    ("{\"steps\": [{\"balance\": {}, \"impute\": {}}]}", "one plugin a step"),
    ("{\"steps\": [{\"impute\": {}}], \"seed\": -1}", "seed"),
    ("{\"steps\": [{\"impute\": {}}], \"output\": \"../x\"}", "output"),
    ("{\"steps\": [{\"impute\": {}}], \"colour\": 1}", "unknown field"),
    ("{\"steps\": [{\"impute\": {}}], \"dataset\": \"nope@1\"}", "nope"),
    ("{\"steps\": [{\"impute\": {}}]", "end of file"),
]


def test_bad_specs_change_nothing_and_say_where(mlfs):
    d = mlfs.mnt / "datasets/shop"
    imbalanced(d)
    for text, why in BAD:
        r = sh(f"printf '%s' '{text}' > {d}/prepare")
        # a spec cut short is judged at close, whose error bash ignores
        assert r.returncode != 0 or why == "end of file", text
        assert r.returncode == 0 or "Invalid argument" in r.stderr or \
            "No such file" in r.stderr, (text, r.stderr)
        err = mlfs.errors().splitlines()[-1]
        assert "datasets/shop/prepare" in err and why in err, (text, err)
    assert (d / "prepare").read_text() == ""
    assert os.readlink(d / "latest") == "v1"
    assert not any(j.startswith("shop-prepare")
                   for j in os.listdir(mlfs.mnt / "jobs"))


def test_prepare_runs_as_the_writer(mlfs_factory):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    d = mlfs.mnt / "datasets/shop"
    imbalanced(d)
    os.chmod(d, 0o755)
    spec = json.dumps({"steps": [{"impute": {}}]})
    # nobody may read root's dataset but not add versions to it
    r = as_user(["bash", "-c", f"echo '{spec}' > {d}/prepare"])
    assert r.returncode != 0
    # into a dataset of nobody's own: the job and the version are theirs
    r = as_user(["bash", "-c", f"echo '{json.dumps({'steps': [{'impute': {}}], 'output': 'mine'})}' > {d}/prepare"])
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "shop-prepare-1") == "succeeded\n"
    assert os.stat(mlfs.mnt / "jobs/shop-prepare-1").st_uid == 65534
    assert os.stat(mlfs.mnt / "datasets/mine").st_uid == 65534
    os.chmod(d, 0o700)
    r = as_user(["bash", "-c", f"echo '{spec}' > {d}/prepare"])
    assert r.returncode != 0


def test_anonymize_hashes_every_value_as_hmac_does(mlfs_factory, tmp_path):
    """The job hashes values in pairs (ABI 1.5's anon_hash_many): values
    of every length around the 56 bytes a pair takes, missing ones among
    them, each as Python's hmac gives it."""
    import hashlib
    import hmac
    key, mlfs = keyed_mount(mlfs_factory, tmp_path,
                            b"fedcba9876543210fedcba9876543210")
    d = mlfs.mnt / "datasets/mails"
    d.mkdir()
    values = []
    for i in range(301):
        n = i % 71
        values.append("" if i % 13 == 5 else
                      (f"u{i}@" + "x" * 80)[:max(n, 1)])
    (d / "data.csv").write_text(
        "id,email\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    spec = {"steps": [{"anonymize": {"email": "hash"}}]}
    r = sh(f"cat > {d}/prepare", input=json.dumps(spec))
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "mails-prepare-1") == "succeeded\n"
    owner = hmac.new(key.read_bytes(), b"mlfs anon v1 uid 0",
                     hashlib.sha256).digest()
    rows = table(d / "v2/data.csv")
    assert len(rows) == len(values)
    for row, v in zip(rows, values):
        want = hmac.new(owner, v.encode(), hashlib.sha256).hexdigest() \
            if v else ""
        assert row["email"] == want, (row["id"], v)


def test_anonymize_hashes_under_the_owners_key_and_never_shows_it(
        mlfs_factory, tmp_path):
    import hashlib
    import hmac
    key, mlfs = keyed_mount(mlfs_factory, tmp_path,
                            b"0123456789abcdef0123456789abcdef",
                            opts=["allow_other"], public=True)
    d = mlfs.mnt / "datasets/people"
    d.mkdir()
    (d / "data.csv").write_text(
        "email,name,zip,born,age,label\n"
        "a@x.org,Ann,75001,1990-03-17,34,yes\n"
        "b@x.org,Bob,75002,1985-11-02,39,no\n"
        ",Cy,75003,2001-01-30,23,no\n")
    spec = {"steps": [{"anonymize": {"email": "hash", "name": "drop",
                                     "zip": "truncate:3", "born": "year",
                                     "age": "bucket:10"}},
                      {"filter": {"column": "label", "op": "!=",
                                  "value": "maybe"}},
                      {"dedupe": {}}]}
    r = sh(f"cat > {d}/prepare", input=json.dumps(spec))
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "people-prepare-1") == "succeeded\n"
    rows = table(d / "v2/data.csv")
    owner = hmac.new(key.read_bytes(), b"mlfs anon v1 uid 0",
                     hashlib.sha256).digest()
    want = hmac.new(owner, b"a@x.org", hashlib.sha256).hexdigest()
    assert list(rows[0]) == ["email", "zip", "born", "age", "label"]
    assert rows[0] == {"email": want, "zip": "750", "born": "1990",
                       "age": "30", "label": "yes"}
    assert rows[2]["email"] == ""                  # missing stays missing
    # another owner's hash of the same value differs
    other = hmac.new(key.read_bytes(), b"mlfs anon v1 uid 65534",
                     hashlib.sha256).digest()
    assert hmac.new(other, b"a@x.org", hashlib.sha256).hexdigest() != want
    # the key is in no file of the tree, the job's folder or its log
    secret = key.read_bytes()
    for blob in (owner, owner.hex().encode(), secret):
        for path in (mlfs.mnt / "jobs/people-prepare-1").rglob("*"):
            if path.is_file():
                assert blob not in path.read_bytes(), path
        assert blob not in (mlfs.mnt / ".mlfs/errors").read_bytes()
        assert blob not in mlfs.stderr().encode()
    # k-anonymity that does not hold fails the job, naming the group
    r = sh(f"cat > {d}/prepare", input=json.dumps(
        {"dataset": "people@1",
         "steps": [{"anonymize": {"zip": "truncate:5",
                                  "k_anonymity": "zip", "k": 2}}]}))
    assert r.returncode == 0, r.stderr
    status = wait_job(mlfs.mnt, "people-prepare-2")
    assert status.startswith("failed") and "k-anonymity" in status
    assert os.readlink(d / "latest") == "v2"


def test_hash_without_a_key_fails_the_job(mlfs):
    d = mlfs.mnt / "datasets/people"
    d.mkdir()
    (d / "data.csv").write_text("email,label\na@x.org,yes\n")
    r = sh(f"cat > {d}/prepare", input=json.dumps(
        {"steps": [{"anonymize": {"email": "hash"}}]}))
    assert r.returncode == 0, r.stderr
    status = wait_job(mlfs.mnt, "people-prepare-1")
    assert status.startswith("failed") and "anon_key" in status
    # the copy the job was given to write into (append-only) is gone
    assert list((mlfs.store / ".tmp").iterdir()) == []


def test_augment_appends_noisy_copies(mlfs):
    from test_train import IRIS
    d = mlfs.mnt / "datasets/iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    r = sh(f"cat > {d}/prepare", input=json.dumps(
        {"steps": [{"augment": {"method": "noise", "sigma": 0.1,
                                "copies": 2}}]}))
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "iris-prepare-1") == "succeeded\n"
    rows = table(d / "v2/data.csv")
    src = table(d / "v1/data.csv")
    assert len(rows) == 3 * len(src)
    assert [dict(r) for r in rows[:150]] == [dict(r) for r in src]
    # the copies keep their row's class, with features moved a little
    for c in (1, 2):
        for i in (0, 75, 149):
            a, b = src[i], rows[c * 150 + i]
            assert a["species"] == b["species"]
            assert abs(float(a["sepal_length"]) -
                       float(b["sepal_length"])) < 1.0


def test_the_key_is_in_no_process_argv_or_environment(mlfs_factory,
                                                       tmp_path):
    """ps shows every process's argv, and root reads every environ: the
    owner key reaches the job by a pipe, in neither."""
    import hashlib
    import hmac
    key, mlfs = keyed_mount(mlfs_factory, tmp_path,
                            b"fedcba9876543210fedcba9876543210")
    d = mlfs.mnt / "datasets/many"
    d.mkdir()
    (d / "data.csv").write_text("email,x\n" + "".join(
        f"user{i}@example.org,{i}\n" for i in range(300000)))
    owner = hmac.new(key.read_bytes(), b"mlfs anon v1 uid 0",
                     hashlib.sha256).digest()
    secrets = (key.read_bytes(), owner, owner.hex().encode())
    (d / "prepare").write_text(json.dumps(
        {"steps": [{"anonymize": {"email": "hash"}}]}))
    seen = 0
    status = mlfs.mnt / "jobs/many-prepare-1/status"
    while status.read_text().split()[0] in ("queued", "running"):
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                argv = (p / "cmdline").read_bytes()
                env = (p / "environ").read_bytes()
            except OSError:
                continue            # gone meanwhile
            seen += b"mlfs-job" in argv
            for s in secrets:
                assert s not in argv and s not in env, p
    assert status.read_text() == "succeeded\n"
    assert seen, "the job ran too fast to be seen"


def test_a_big_output_is_taken_as_it_is_written(mlfs, tmp_path):
    """A prepare job's 20 MiB output, copied and scanned by the daemon
    while the job writes it (fs/ml/outtail.c): the version holds exactly
    the job's rows, and its hash, schema and stats are those of the same
    bytes written to a dataset and scanned at close."""
    from test_ingest import read_json, same_stats
    rnd = random.Random(3)
    rows = ["id,name,x"]
    size = 0
    i = 0
    while size < 24 << 20:
        row = f"{i},n{rnd.randint(0, 10**9)},{rnd.uniform(-50, 50):.4f}"
        rows.append(row)
        size += len(row) + 1
        i += 1
    d = mlfs.mnt / "datasets/wide"
    d.mkdir()
    src = tmp_path / "wide.csv"
    src.write_text("\n".join(rows) + "\n")
    (d / "source").write_text(f"{src}\n")
    spec = {"steps": [{"anonymize": {"name": "drop"}}]}
    r = sh(f"cat > {d}/prepare", input=json.dumps(spec))
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "wide-prepare-1", timeout=300) == \
        "succeeded\n"
    got = (d / "v2/data.csv").read_bytes()
    lines = got.decode().splitlines()
    assert lines[0] == "id,x" and len(lines) == len(rows)
    for k in (1, len(rows) // 2, len(rows) - 1):
        rid, _, x = rows[k].split(",")
        gid, gx = lines[k].split(",")
        assert gid == rid and float(gx) == float(x)
    # the same bytes, every write elsewhere than the end: scanned at close
    ref = mlfs.mnt / "datasets/ref"
    ref.mkdir()
    fd = os.open(ref / "data.csv", os.O_WRONLY | os.O_TRUNC)
    try:
        mib = 1 << 20
        tail = max(len(got) - mib, 0)
        assert os.pwrite(fd, got[tail:], tail) == len(got) - tail
        for at in range(0, tail, mib):
            n = min(mib, tail - at)
            assert os.pwrite(fd, got[at:at + n], at) == n
    finally:
        os.close(fd)
    assert read_json(d / "v2/lineage")["hash"] == \
        read_json(ref / "v1/lineage")["hash"]
    assert read_json(d / "v2/schema") == read_json(ref / "v1/schema")
    same_stats(read_json(d / "v2/stats"), read_json(ref / "v1/stats"))

    # The same spec again: the same bytes, so no new version; the copy
    # is dropped (closed on a thread of its own) and the job's folder is
    # moved aside and removed after the waiter is woken.
    r = sh(f"cat > {d}/prepare",
           input=json.dumps({"dataset": "wide@1", **spec}))
    assert r.returncode == 0, r.stderr
    assert wait_job(mlfs.mnt, "wide-prepare-2", timeout=300) == \
        "succeeded\n"
    assert os.readlink(d / "latest") == "v2"
    assert not (d / "v3").exists()
    jobs = mlfs.cache / "jobs"
    for _ in range(100):
        left = sorted(p.name for p in jobs.iterdir()) + \
            sorted(p.name for p in (mlfs.store / ".tmp").iterdir())
        if not left:
            break
        time.sleep(0.05)
    assert left == []


def test_job_folders_set_aside_are_removed_at_start(mlfs):
    """A daemon that stopped between setting an ended job's folder aside
    (jobs/.ended-<name>) and removing it: the next start removes it."""
    aside = mlfs.cache / "jobs/.ended-x-prepare-1"
    (aside / "out").mkdir(parents=True)
    (aside / "out/data.csv").write_text("a,b\n1,2\n")
    # and a job's copy left append-only (chattr +a) in the store's .tmp
    left = mlfs.store / ".tmp/1-2-left"
    left.write_text("a,b\n")
    attr = subprocess.run(["chattr", "+a", str(left)], capture_output=True)
    mlfs.restart()
    # the mount shows before the services start (the runner removes the
    # folders as it starts): wait for them, bounded
    for _ in range(200):
        if not aside.exists() and (attr.returncode or not left.exists()):
            break
        time.sleep(0.05)
    assert not aside.exists()
    assert (mlfs.cache / "jobs").is_dir()
    if attr.returncode == 0:    # a file system with the attribute
        assert not left.exists()


def test_an_output_past_max_file_fails_the_job(mlfs_factory):
    """A job whose output grows past -o max_file: the daemon stops taking
    it (never mapping past what it reserved), the job fails with EFBIG,
    no version is made, and the copy is gone."""
    m = mlfs_factory(opts=["max_file=20M"])
    rnd = random.Random(4)
    rows = ["x,y,label"] + [f"{rnd.uniform(0, 1):.6f},{rnd.uniform(0, 1):.6f},"
                            f"{rnd.choice('ab')}" for _ in range(400000)]
    d = m.mnt / "datasets/big"
    d.mkdir()
    (d / "data.csv").write_text("\n".join(rows) + "\n")
    assert (d / "v1/data.csv").stat().st_size > 7 << 20
    r = sh(f"cat > {d}/prepare", input=json.dumps(
        {"steps": [{"augment": {"method": "noise", "sigma": 0.1,
                                "copies": 3}}]}))
    assert r.returncode == 0, r.stderr
    status = wait_job(m.mnt, "big-prepare-1", timeout=300)
    assert status.startswith("failed") and "too large" in status, status
    assert not (d / "v2").exists()
    assert list((m.store / ".tmp").iterdir()) == []
    assert (d / "v1/data.csv").read_text().count("\n") == len(rows)
