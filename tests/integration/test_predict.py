"""predict: a write of many rows, which the daemon reads and scores on two
threads (from 64 KiB of rows: PREDICT_SPLIT_MIN in fs/ml/predict.c), is
answered exactly as the same rows written a few at a time: the same
lines, in the same order, a bad row answered with its error in its
place."""
import json
import os

from conftest import ROOT, wait_job

IRIS = (ROOT / "examples" / "data" / "iris.csv").read_text()
HEADER = b"sepal_length,sepal_width,petal_length,petal_width\n"
# rows per small write: a multiple of PREDICT_SPLIT_ALIGN (64), so that the
# model's BLAS call sees each row at the same place of its blocks as in
# the large write, and the answers agree to the last digit
SMALL = 64


def model(mlfs, job, spec):
    d = mlfs.mnt / "datasets" / "iris"
    if not d.exists():
        d.mkdir()
        (d / "data.csv").write_text(IRIS)
    spec = dict(spec, dataset="iris", model=job)
    (mlfs.mnt / "train" / f"{job}.json").write_text(json.dumps(spec))
    assert wait_job(mlfs.mnt, job) == "succeeded\n"
    return mlfs.mnt / "models" / job / "predict"


def rows(n):
    """n distinct iris-like rows, with bad rows, blank lines, a CRLF and
    a JSON row among them; and the index (among rows) of each bad one
    with the answer it must get."""
    base = [l.rsplit(",", 1)[0].split(",")
            for l in IRIS.splitlines()[1:]]
    out, bad = [], {}
    for i in range(n):
        v = base[i % len(base)]
        out.append(",".join("%.3f" % (float(x) + (i % 97) * 1e-3)
                            for x in v))
    out[4321] = "5.1,3.5,abc,0.2"
    bad[4321] = "error: petal_length: not a number \"abc\""
    out[4322] = '5.1,3"5,1.4,0.2'
    bad[4322] = "error: quote inside unquoted field"
    out[7000] = "5.1,3.5,1.4"
    bad[7000] = "error: expected 4 fields, got 3"
    out[123] += "\r"  # CRLF: the same row
    out[5000] = json.dumps({"sepal_length": 6.3, "sepal_width": 3.3,
                            "petal_length": 6.0, "petal_width": 2.5})
    lines = [l.encode() + b"\n" for l in out]
    lines.insert(2000, b"\n")  # blank lines are not rows
    lines.insert(6000, b"\r\n")
    return lines, bad


def answers(p, writes):
    """The answers of one handle given writes, each drained after it."""
    fd = os.open(p, os.O_RDWR)
    got = b""
    try:
        for w in writes:
            assert os.write(fd, w) == len(w)
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                got += b
    finally:
        os.close(fd)
    return got.decode().splitlines()


def small_writes(lines):
    """The header, then SMALL rows a write (blank lines ride along)."""
    out, cur, n = [HEADER], b"", 0
    for l in lines:
        cur += l
        n += l.strip() != b""
        if n == SMALL:
            out.append(cur)
            cur, n = b"", 0
    return out + [cur] if cur else out


def check_large_write(p, lines, bad):
    data = HEADER + b"".join(lines)
    assert len(data) > 2 * 64 * 1024  # two lanes, in one or two requests
    big = answers(p, [data])
    small = answers(p, small_writes(lines))
    nrows = sum(1 for l in lines if l.strip())
    assert len(big) == nrows
    assert big == small
    for i, want in bad.items():
        assert big[i] == want, i
        assert not big[i - 1].startswith("error") or i - 1 in bad
        assert not big[i + 1].startswith("error") or i + 1 in bad
    assert sum(a.startswith("error") for a in big) == len(bad)
    assert json.loads(big[5000])["prediction"] == "virginica"
    return big


def test_a_large_write_answers_as_small_writes_do(mlfs):
    p = model(mlfs, "lr", {"algorithm": "logistic",
                           "params": {"l2": 0.001}})
    lines, bad = rows(8000)
    big = check_large_write(p, lines, bad)
    # and as the rows were written one at a time, up to float rounding
    # in the model's BLAS call (a call of one row is its tail)
    ones = answers(p, [HEADER] + lines[:300])
    for a, b in zip(ones, big[:300]):
        fa, fb = a.split(","), b.split(",")
        assert fa[0] == fb[0]
        assert all(abs(float(x) - float(y)) <= 1e-6
                   for x, y in zip(fa[1:], fb[1:]))


def test_a_large_write_to_an_mlp_answers_as_small_writes_do(mlfs):
    p = model(mlfs, "mlp", {"algorithm": "mlp",
                            "params": {"hidden": [8], "epochs": 5}})
    lines, bad = rows(8000)
    check_large_write(p, lines, bad)
