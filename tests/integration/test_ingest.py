"""Big copies into datasets/<d>/data.csv are scanned while they arrive
(fs/repo/stagescan.c, past 16 MiB): the version, its hash, schema and stats
are the ones a scan at close gives, whatever the writes do on the way:
truncations, rewrites of bytes already scanned, bad rows, a file whose
last record never ends."""
import errno
import json
import os
import random
import subprocess

import pytest

MB = 1 << 20


def big_csv(path, mb, seed=1):
    """About mb MiB of CSV: numbers, a category, text with quotes, commas
    and newlines inside quoted fields, and missing values."""
    rnd = random.Random(seed)
    cats = ["red", "green", "blue", "grey"]
    rows = ["id,x,y,colour,note"]
    size = 0
    i = 0
    while size < mb * MB:
        note = rnd.choice(['plain', '"a, b"', '"two\nlines"', '"say ""hi"""',
                           '', 'NA'])
        x = "" if i % 997 == 0 else f"{rnd.uniform(-1e3, 1e3):.6f}"
        row = f"{i},{x},{rnd.randint(0, 50)},{rnd.choice(cats)},{note}"
        rows.append(row)
        size += len(row) + 1
        i += 1
    data = ("\n".join(rows) + "\n").encode()
    path.write_bytes(data)
    return data


def read_json(p):
    return json.loads(p.read_text())


def same_stats(a, b):
    """Equal but for the rounding of means and deviations (a scan in
    parts adds in another order)."""
    assert a["rows"] == b["rows"]
    for ca, cb in zip(a["columns"], b["columns"], strict=True):
        for k in ca:
            if k in ("mean", "std") and ca[k] is not None:
                assert ca[k] == pytest.approx(cb[k], rel=1e-12), k
            else:
                assert ca[k] == cb[k], (ca["name"], k)


def write_all(fd, buf, step=1 << 20):
    for i in range(0, len(buf), step):
        assert os.write(fd, buf[i:i + step]) == len(buf[i:i + step])


def test_streamed_copy_equals_a_scan_at_close(mlfs, tmp_path):
    """The same 40 MiB three ways: cp (scanned as written), `source` (a
    copy scanned as it is made, as job outputs are) and writes that never
    append (scanned at close): one hash, schema and stats."""
    src = tmp_path / "big.csv"
    data = big_csv(src, 40)
    ds = {}
    for name in ("streamed", "imported", "atclose"):
        ds[name] = mlfs.mnt / "datasets" / name
        ds[name].mkdir()
    r = subprocess.run(["cp", str(src), str(ds["streamed"] / "data.csv")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (ds["imported"] / "source").write_text(str(src) + "\n")
    fd = os.open(ds["atclose"] / "data.csv", os.O_WRONLY | os.O_TRUNC)
    try:
        tail = len(data) - MB
        assert os.pwrite(fd, data[tail:], tail) == MB
        for i in range(0, tail, MB):
            n = min(MB, tail - i)
            assert os.pwrite(fd, data[i:i + n], i) == n
    finally:
        os.close(fd)
    ref = ds["atclose"] / "v1"
    assert (ref / "data.csv").read_bytes() == data
    for name in ("streamed", "imported"):
        v = ds[name] / "v1"
        assert (v / "data.csv").read_bytes() == data
        assert read_json(v / "lineage")["hash"] == \
            read_json(ref / "lineage")["hash"]
        assert read_json(v / "schema") == read_json(ref / "schema")
        same_stats(read_json(v / "stats"), read_json(ref / "stats"))
    stats = read_json(ref / "stats")
    assert stats["rows"] == data.count(b"\n") - 1 - data.count(b"two\nlines")


def test_truncation_mid_stream(mlfs, tmp_path):
    """A copy cut back after the scan began: the version is what is left
    plus what came after, as for any file."""
    data = big_csv(tmp_path / "a.csv", 24)
    more = big_csv(tmp_path / "b.csv", 1, seed=2).split(b"\n", 1)[1]
    cut = data.index(b"\n", len(data) // 3) + 1
    d = mlfs.mnt / "datasets" / "cut"
    d.mkdir()
    fd = os.open(d / "data.csv", os.O_WRONLY | os.O_TRUNC)
    try:
        write_all(fd, data)
        os.ftruncate(fd, cut)
        os.lseek(fd, cut, os.SEEK_SET)
        write_all(fd, more)
    finally:
        os.close(fd)
    want = data[:cut] + more
    assert (d / "v1" / "data.csv").read_bytes() == want
    assert read_json(d / "v1" / "stats")["rows"] == (
        want.count(b"\n") - 1 - want.count(b"two\nlines"))


def test_rewrite_of_scanned_bytes(mlfs, tmp_path):
    """A write back into bytes the scan has read: the stats are the final
    bytes', not the ones first written."""
    data = big_csv(tmp_path / "a.csv", 24)
    d = mlfs.mnt / "datasets" / "rewrite"
    d.mkdir()
    first = data.index(b"\n", data.index(b"\n") + 1) + 1  # the row id 1
    old = data[first:data.index(b"\n", first)].split(b",")[1]
    new = b"9" * len(old)  # the same length: the rows stay as they are
    at = first + len(b"1,")
    fd = os.open(d / "data.csv", os.O_WRONLY | os.O_TRUNC)
    try:
        write_all(fd, data)
        assert os.pwrite(fd, new, at) == len(new)
    finally:
        os.close(fd)
    want = data[:at] + new + data[at + len(new):]
    assert (d / "v1" / "data.csv").read_bytes() == want
    x = read_json(d / "v1" / "stats")["columns"][1]
    assert x["max"] == float(new)


def test_bad_row_deep_in_a_stream(mlfs, tmp_path):
    """A ragged row 24 MiB in fails its write with the line, and nothing
    is published; the mount goes on."""
    data = big_csv(tmp_path / "a.csv", 24)
    line = data.count(b"\n") + 1
    d = mlfs.mnt / "datasets" / "ragged"
    d.mkdir()
    fd = os.open(d / "data.csv", os.O_WRONLY | os.O_TRUNC)
    try:
        write_all(fd, data)
        with pytest.raises(OSError) as e:
            os.write(fd, b"1,2\n")
        assert e.value.errno == errno.EINVAL
    finally:
        with pytest.raises(OSError):
            os.close(fd)
    assert not any(n.startswith("v") for n in os.listdir(d))
    log = (mlfs.mnt / ".mlfs" / "errors").read_text()
    assert f"datasets/ragged/data.csv:{line}:" in log
    (d / "data.csv").write_text("a,b\n1,2\n")
    assert (d / "v1" / "data.csv").read_text() == "a,b\n1,2\n"


def test_unended_quote_found_at_close(mlfs, tmp_path):
    """The last record's quote never closes: only the end can tell, and
    close says where, exactly as a scan at close would."""
    data = big_csv(tmp_path / "a.csv", 24)
    line = data.count(b"\n") + 1
    d = mlfs.mnt / "datasets" / "unended"
    d.mkdir()
    fd = os.open(d / "data.csv", os.O_WRONLY | os.O_TRUNC)
    write_all(fd, data + b'1,2,3,red,"never closed\n')
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EINVAL
    assert not any(n.startswith("v") for n in os.listdir(d))
    log = (mlfs.mnt / ".mlfs" / "errors").read_text()
    assert f"datasets/unended/data.csv:{line}:11: unterminated quoted field" \
        in log
