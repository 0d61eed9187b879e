"""Model bundles: models/<m>/v<n>/bundle.tar made on one mount, copied into
models/<m>/import on another, judged (tar only, five members, the plugin
installed) and reproduced by a job before it becomes a version.  Through
real mounts, with tars crafted by Python's tarfile."""
import io
import json
import os
import subprocess
import tarfile

import pytest

from conftest import as_user
from test_batch import model, predict_all, same_answers
from test_s3 import xxh128
from test_train import IRIS, sh

ROWS = "\n".join(",".join(l.split(",")[:4])
                 for l in IRIS.splitlines()[1:]) + "\n"


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def tar_of(files, mode="w", tweak=None):
    """A tar of files ({name: bytes}, or (name, bytes) pairs); tweak(TarInfo)
    may change each."""
    buf = io.BytesIO()
    items = files.items() if isinstance(files, dict) else files
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in items:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            if tweak:
                tweak(ti)
            t.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def import_(mnt, name, data):
    """cat the bundle into import, as a shell would."""
    os.makedirs(mnt / "models" / name, exist_ok=True)
    return subprocess.run(["bash", "-c", f"cat > {mnt}/models/{name}/import"],
                          input=data, capture_output=True)


@pytest.fixture
def bundle(mlfs):
    model(mlfs)
    return (mlfs.mnt / "models/m/v1/bundle.tar").read_bytes()


def test_bundle_holds_the_model_and_imports_on_another_mount(
        mlfs, mlfs_factory, bundle):
    st = os.stat(mlfs.mnt / "models/m/v1/bundle.tar")
    assert st.st_size == len(bundle)        # its true size, without reading
    assert bundle == (mlfs.mnt / "models/m/v1/bundle.tar").read_bytes()
    got = members(bundle)
    assert list(got) == ["bundle.json", "model", "meta.json",
                         "metrics.json", "sample.csv"]
    v = mlfs.mnt / "models/m/v1"
    for f in ("model", "meta.json", "metrics.json", "sample.csv"):
        assert got[f] == (v / f).read_bytes(), f
    info = json.loads(got["bundle.json"])
    meta = json.loads((v / "meta.json").read_text())
    assert info["bundle"] == 1 and info["model"] == "m"
    assert info["version"] == 1 and info["task"] == "classification"
    assert info["plugin"] == "logistic" and info["model_format"] == 1
    assert info["plugin_hash"] == meta["plugin_hash"]
    assert info["dataset"] == "iris@1"
    assert b"ELF" not in bundle                # never code
    with tarfile.open(fileobj=io.BytesIO(bundle)) as t:
        assert all(m.isreg() and m.mode == 0o444 for m in t.getmembers())

    other = mlfs_factory(sub="other")
    r = import_(other.mnt, "churn", bundle)
    assert r.returncode == 0, r.stderr
    assert os.readlink(other.mnt / "models/churn/latest") == "v1"
    w = other.mnt / "models/churn/v1"
    assert (w / "model").read_bytes() == got["model"]
    assert (w / "sample.csv").read_bytes() == got["sample.csv"]
    same_answers(predict_all(other, w / "predict", ROWS),
                 predict_all(mlfs, v / "predict", ROWS))
    meta2 = json.loads((w / "meta.json").read_text())
    assert meta2["name"] == "churn" and meta2["version"] == 1
    imp = meta2["imported"]
    assert imp["model"] == "m" and imp["version"] == 1
    assert imp["plugin_hash"] == meta["plugin_hash"]
    assert len(imp["plugin_hash_here"]) == 32
    assert imp["dataset"] == "iris@1"
    assert "dataset" not in meta2             # another mount's
    assert meta2["job"] == "churn-import-1"
    assert (other.mnt / "jobs/churn-import-1/status").read_text() == \
        "succeeded\n"
    # exported again: the lineage goes with it
    again = members((w / "bundle.tar").read_bytes())
    assert json.loads(again["bundle.json"])["imported"]["model"] == "m"
    # a second import is a second version, and survives a remount
    assert import_(other.mnt, "churn", bundle).returncode == 0
    other.restart()
    assert os.readlink(other.mnt / "models/churn/latest") == "v2"
    assert (other.mnt / "models/churn/v2/bundle.tar").stat().st_size > 0


def test_cp_and_gzip_and_padding(mlfs, bundle, tmp_path):
    gz = tmp_path / "b.tar.gz"
    import gzip
    gz.write_bytes(gzip.compress(bundle))
    os.makedirs(mlfs.mnt / "models/z")
    r = subprocess.run(["cp", str(gz), f"{mlfs.mnt}/models/z/import"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.readlink(mlfs.mnt / "models/z/latest") == "v1"
    # tar pads to 10 KiB records: zeros after the end are fine
    padded = bundle + bytes(10240 - len(bundle) % 10240)
    assert import_(mlfs.mnt, "z", padded).returncode == 0
    assert os.readlink(mlfs.mnt / "models/z/latest") == "v2"
    # GNU tar of the members, written by tar itself into the file
    d = tmp_path / "x"
    d.mkdir()
    for n, b in members(bundle).items():
        (d / n).write_bytes(b)
    r = subprocess.run(
        ["tar", "-C", str(d), "-czf", f"{mlfs.mnt}/models/z/import",
         "bundle.json", "model", "meta.json", "metrics.json", "sample.csv"],
        capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.readlink(mlfs.mnt / "models/z/latest") == "v3"


def tampered(bundle):
    good = members(bundle)
    sample = good["sample.csv"].decode().splitlines()
    # a recorded answer the model does not give
    cells = sample[1].split(",")
    cells[-1] = str(round(float(cells[-1]) + 0.25, 6))
    bad_sample = "\n".join([sample[0], ",".join(cells)] + sample[2:]) + "\n"
    info = json.loads(good["bundle.json"])

    def with_(**kw):
        f = dict(good)
        f.update(kw)
        return f

    def link(ti):
        if ti.name == "meta.json":
            ti.type, ti.linkname, ti.size = tarfile.SYMTYPE, "/etc/passwd", 0

    def hard(ti):
        if ti.name == "meta.json":
            ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, "model", 0

    def dev(ti):
        if ti.name == "meta.json":
            ti.type, ti.size = tarfile.CHRTYPE, 0

    def dup():
        return tar_of(list(good.items()) + [("model", good["model"])])

    def sparse():
        """An old GNU sparse meta.json: 2 bytes stored, 1 GiB when read."""
        buf = io.BytesIO(tar_of({k: v for k, v in good.items()
                                 if k != "meta.json"}))
        body = buf.getvalue()[:-1024].rstrip(b"\0")
        body += bytes(-len(body) % 512)
        h = bytearray(tarfile.TarInfo("meta.json").tobuf(
            tarfile.GNU_FORMAT))[:512]
        h[156:157] = b"S"
        h[124:136] = b"%011o\0" % 2                     # stored bytes
        h[386:398] = b"%011o\0" % 0                     # map: offset 0
        h[398:410] = b"%011o\0" % 2                     #      2 bytes
        h[483:495] = b"%011o\0" % (1 << 30)             # real size
        h[148:156] = b" " * 8
        h[148:156] = b"%06o\0 " % sum(h)
        return body + bytes(h) + b"{}".ljust(512, b"\0") + bytes(1024)

    def header(change):
        """The model file with its JSON header changed, checksum anew."""
        m = good["model"]
        hlen = int.from_bytes(m[12:16], "little")
        h = json.loads(m[24:24 + hlen])
        change(h)
        hb = json.dumps(h, separators=(",", ":"), sort_keys=True).encode()
        body = m[:12] + len(hb).to_bytes(4, "little") + m[16:24] + hb + \
            m[24 + hlen:-16]
        return body + bytes.fromhex(xxh128(body))

    return [
        ("not a tar", b"hello\n" * 200, "not a tar archive"),
        ("truncated", bundle[:len(bundle) // 2], ""),
        ("dotdot", tar_of({("../" + k if k == "meta.json" else k): v
                           for k, v in good.items()}), "\"..\""),
        ("absolute", tar_of({("/tmp/" + k if k == "meta.json" else k): v
                             for k, v in good.items()}), "absolute"),
        ("symlink", tar_of(good, tweak=link), "symbolic link"),
        ("hardlink", tar_of(good, tweak=hard), "hard link"),
        ("device", tar_of(good, tweak=dev), "device"),
        ("unknown member", tar_of(with_(**{"run.so": b"\x7fELF"})),
         "unknown"),
        ("duplicate", dup(), "twice"),
        ("missing member", tar_of({k: v for k, v in good.items()
                                   if k != "sample.csv"}), "no member"),
        ("oversize", tar_of(with_(**{"bundle.json": b" " * 70000})),
         "over the cap"),
        ("no plugin", tar_of(with_(**{"bundle.json": json.dumps(
            dict(info, plugin="xgboost")).encode()})), "\"xgboost\""),
        ("format", tar_of(with_(**{"bundle.json": json.dumps(
            dict(info, model_format=2)).encode()})), "format"),
        ("model file", tar_of(with_(model=good["model"][:-3] + b"xyz")),
         "checksum"),
        ("sample", tar_of(with_(**{"sample.csv": bad_sample.encode()})),
         "row 1"),
        ("sparse", sparse(), "sparse"),
        ("a name with a newline", tar_of(with_(**{"bundle.json": json.dumps(
            dict(info, model="x\n%s\x1b[31m")).encode()})), "\"model\""),
        ("a version that is not one", tar_of(with_(**{
            "bundle.json": json.dumps(dict(info, version=[1])).encode()})),
         "\"version\""),
        # the header says two classes, the weights score three: predict
        # could not serve it (the job's scoring reads less than it does)
        ("classes", tar_of(with_(model=header(
            lambda h: h.update(classes=h["classes"][:2])))), "sample.csv"),
    ]


def test_tampered_bundles_are_refused_with_nothing_written(mlfs, bundle):
    os.makedirs(mlfs.mnt / "models/t")
    mlfs.expect(r"import")
    for name, data, why in tampered(bundle):
        r = import_(mlfs.mnt, "t", data)
        assert r.returncode != 0, name
        assert "Invalid argument" in r.stderr.decode(), (name, r.stderr)
        assert sorted(os.listdir(mlfs.mnt / "models/t")) == [
            "import", "predict"], name
        err = mlfs.errors().splitlines()[-1]
        assert "models/t/import" in err and why in err, (name, err)
    # the good one still goes in
    assert import_(mlfs.mnt, "t", bundle).returncode == 0
    assert os.readlink(mlfs.mnt / "models/t/latest") == "v1"


def test_shell_groups_dups_and_data_after_the_end(mlfs, bundle, tmp_path):
    """A close before the end says so and changes nothing, so a shell
    group (each command's exit closes a copy) still imports; bytes after
    a bundle taken fail their write, and the bundle stays imported."""
    src = tmp_path / "b.tar"
    src.write_bytes(bundle)
    os.makedirs(mlfs.mnt / "models/g")
    p = f"{mlfs.mnt}/models/g/import"
    r = subprocess.run(["bash", "-c", f"{{ head -c 5120 {src}; "
                        f"tail -c +5121 {src}; }} > {p}"],
                       capture_output=True, text=True)
    assert os.readlink(mlfs.mnt / "models/g/latest") == "v1", r.stderr
    assert "not a whole bundle yet" in mlfs.errors()
    r = subprocess.run(["bash", "-c", f"cat {src} {src} > {p}"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert "imported as v2" in mlfs.errors().splitlines()[-1]
    assert os.readlink(mlfs.mnt / "models/g/latest") == "v2"
    # members are dated when the version was made
    with tarfile.open(fileobj=io.BytesIO(bundle)) as t:
        assert all(m.mtime > 1.7e9 for m in t.getmembers())


def test_import_needs_write_permission_on_the_model(mlfs_factory):
    mlfs = mlfs_factory(opts=["allow_other"], public=True)
    model(mlfs)
    data = (mlfs.mnt / "models/m/v1/bundle.tar").read_bytes()
    src = mlfs.tmp / "b.tar"
    src.write_bytes(data)
    os.chmod(src, 0o644)
    os.makedirs(mlfs.mnt / "models/mine")
    os.chmod(mlfs.mnt / "models/mine", 0o755)
    p = f"{mlfs.mnt}/models/mine/import"
    r = as_user(["bash", "-c", f"cat {src} > {p}"])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert sorted(os.listdir(mlfs.mnt / "models/mine")) == [
        "import", "predict"]
    # nobody's own model: the job runs as nobody, the version is theirs
    r = as_user(["mkdir", f"{mlfs.mnt}/models/theirs"])
    assert r.returncode == 0, r.stderr
    r = as_user(["bash", "-c",
                 f"cat {src} > {mlfs.mnt}/models/theirs/import"])
    assert r.returncode == 0, r.stderr
    st = os.stat(mlfs.mnt / "models/theirs/v1/model")
    assert st.st_uid == 65534
    assert (mlfs.mnt / "jobs/theirs-import-1/status").read_text() == \
        "succeeded\n"
    assert os.stat(mlfs.mnt / "jobs/theirs-import-1").st_uid == 65534
    # reading a bundle needs read permission, as the files in it do
    os.chmod(mlfs.mnt / "models/m", 0o700)
    r = as_user(["cat", f"{mlfs.mnt}/models/m/v1/bundle.tar"])
    assert r.returncode != 0


def test_s3_round_trip_and_a_reader_refuses_imports(mlfs, mlfs_factory,
                                                    bundle, s3server):
    """Imported into an S3 mount, the version is in the bucket: a fresh
    mount of the bucket alone serves it; a reader mount (a second mount
    while the first writes) serves bundle.tar and refuses an import with
    EROFS."""
    from test_s3 import s3mount
    w = s3mount(mlfs_factory, s3server, sub="w")
    r = import_(w.mnt, "churn", bundle)
    assert r.returncode == 0, r.stderr
    want = predict_all(w, w.mnt / "models/churn/v1/predict", ROWS)
    (w.mnt / ".mlfs" / "cache").write_text("sync\n")
    ro = s3mount(mlfs_factory, s3server, sub="r", prefix=w.prefix)
    got = members((ro.mnt / "models/churn/v1/bundle.tar").read_bytes())
    assert got["model"] == members(bundle)["model"]
    r = subprocess.run(["bash", "-c", f"cat > {ro.mnt}/models/churn/import"],
                       input=bundle, capture_output=True)
    assert r.returncode != 0 and b"Read-only" in r.stderr, r.stderr
    ro.stop()
    w.stop()
    again = s3mount(mlfs_factory, s3server, sub="a", prefix=w.prefix)
    same_answers(predict_all(again, again.mnt / "models/churn/v1/predict",
                             ROWS), want)
    assert json.loads((again.mnt / "models/churn/v1/meta.json")
                      .read_text())["imported"]["model"] == "m"


def test_a_bundle_that_cannot_be_made_says_why(mlfs_factory, tmp_path):
    """libarchive is bound at the first bundle: one that is there but not
    libarchive (an empty library under its name, first on the daemon's
    LD_LIBRARY_PATH) fails the read of bundle.tar, and an import, with EIO
    and a line naming the file and the missing symbol in .mlfs/errors, and
    the daemon stays up."""
    lib = tmp_path / "lib"
    lib.mkdir()
    src = tmp_path / "empty.c"
    src.write_text("int not_libarchive;\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o",
                    str(lib / "libarchive.so.13"), str(src)], check=True)
    mlfs = mlfs_factory(env={"LD_LIBRARY_PATH": str(lib)})
    model(mlfs)
    r = sh(f"cat {mlfs.mnt}/models/m/v1/bundle.tar > /dev/null")
    assert r.returncode != 0
    assert "Input/output error" in r.stderr
    errors = (mlfs.mnt / ".mlfs/errors").read_text()
    assert "models/m/v1/bundle.tar: libarchive.so.13: no archive_" in errors
    assert (mlfs.mnt / "models/m/v1/meta.json").read_bytes()
    # and an import, which reads a bundle: the same reason, no version
    r = import_(mlfs.mnt, "z", tar_of({"bundle.json": b"{}"}))
    assert r.returncode != 0 and b"Input/output error" in r.stderr
    errors = (mlfs.mnt / ".mlfs/errors").read_text()
    assert "models/z/import: libarchive.so.13: no archive_" in errors
    assert sorted(os.listdir(mlfs.mnt / "models/z")) == ["import", "predict"]
