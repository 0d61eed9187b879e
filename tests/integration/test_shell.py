"""The shell contract (issue 11): an error reaches the shell in the write
that carries the bad bytes (bash ignores close's result on a
redirection)."""
import os
import subprocess

from conftest import ROOT

IRIS = (ROOT / "examples" / "data" / "iris.csv").read_text()
ROW = "5.0,3.6,1.4,0.2,setosa\n"


def versions(d):
    return sorted(p for p in os.listdir(d) if p[1:].isdigit())


def sh(cmd):
    return subprocess.run(["bash", "-c", cmd], capture_output=True,
                          text=True, timeout=60)


def test_bad_source_and_schema_fail_the_shells_echo(mlfs, tmp_path):
    d = mlfs.mnt / "datasets" / "cust"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    mlfs.expect("rejected")
    r = sh(f"echo /nonexistent.csv > {d}/source")
    assert r.returncode != 0 and "No such file or directory" in r.stderr
    os.mkfifo(tmp_path / "fifo")
    r = sh(f"echo {tmp_path}/fifo > {d}/source")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    r = sh(f"""echo '{{"columns":[{{"name":"nosuch","role":"pii"}}]}}' """
           f"> {d}/schema")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert "nosuch" in mlfs.errors()
    assert versions(d) == ["v1"]
    # good ones still work, from the shell
    (tmp_path / "more.csv").write_text(IRIS + ROW)
    r = sh(f"echo {tmp_path}/more.csv > {d}/source")
    assert r.returncode == 0, r.stderr
    r = sh(f"""echo '{{"columns":[{{"name":"petal_width","role":"pii"}}]}}' """
           f"> {d}/schema")
    assert r.returncode == 0, r.stderr
    assert versions(d) == ["v1", "v2", "v3"]


def test_predict_answers_belong_to_their_file(mlfs):
    from conftest import wait_job
    import json
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    for m in ("a", "b"):
        (mlfs.mnt / "train" / f"{m}.json").write_text(json.dumps(
            {"dataset": "iris", "algorithm": "logistic", "model": m}))
        assert wait_job(mlfs.mnt, m) == "succeeded\n"
    files = [mlfs.mnt / "models/a/predict", mlfs.mnt / "models/b/predict",
             mlfs.mnt / "models/a/v1/predict"]
    for x in files:
        for y in files:
            # a session of its own, as a new terminal is
            r = subprocess.run(
                ["setsid", "-w", "bash", "-c",
                 f"echo 5.1,3.5,1.4,0.2 > {x}; cat {y}"],
                capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            if x == y:
                assert r.stdout.startswith("setosa,"), (x, r.stdout)
            else:
                assert r.stdout == "", (x, y, r.stdout)


def test_predict_input_is_checked_not_guessed(mlfs):
    from conftest import wait_job
    import json
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    (mlfs.mnt / "train" / "a.json").write_text(json.dumps(
        {"dataset": "iris", "algorithm": "logistic", "model": "a"}))
    assert wait_job(mlfs.mnt, "a") == "succeeded\n"
    rows = ["abc,def,ghi,jkl", "0.2xyz,3.5,1.4,0.2", "0x10,3.5,1.4,0.2",
            "inf,3.5,1.4,0.2", ",3.5,1.4,0.2", "NA,3.5,1.4,0.2",
            '{"sepal_length": "old", "sepal_width": 3.5, '
            '"petal_length": 1.4, "petal_width": 0.2}',
            '{"sepal_length": true, "sepal_width": 3.5}',
            "5.1,3.5,1.4,0.2"]
    fd = os.open(mlfs.mnt / "models/a/predict", os.O_RDWR)
    try:
        os.write(fd, ("\n".join(rows) + "\n").encode())
        out = os.read(fd, 65536).decode().splitlines()
    finally:
        os.close(fd)
    assert len(out) == len(rows), out
    assert out[0] == 'error: sepal_length: not a number "abc"'
    assert out[1] == 'error: sepal_length: not a number "0.2xyz"'
    assert out[2] == 'error: sepal_length: not a number "0x10"'
    assert out[3] == 'error: sepal_length: not a number "inf"'
    assert out[4].startswith("setosa,")      # empty: imputed as trained
    assert out[5].startswith("setosa,")      # a missing marker: the same
    assert out[6] == 'error: sepal_length: not a number "old"'
    assert out[7] == "error: sepal_length: a JSON boolean, not a value"
    assert out[8].startswith("setosa,")


def test_a_bad_appended_row_fails_the_shells_echo(mlfs):
    d = mlfs.mnt / "datasets" / "cust"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    mlfs.expect("rejected")
    r = sh(f"echo 1,2 >> {d}/data.csv")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    lines = IRIS.count("\n")
    assert f"datasets/cust/data.csv:{lines + 1}:4: record has 2 fields, " \
        "header has 5" in mlfs.errors()
    r = sh(f"printf 'a\\0b\\n' >> {d}/data.csv")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert "binary data (NUL byte)" in mlfs.errors()
    # a new file is judged from its header on
    r = sh(f"printf 'x,y\\n1,2\\n3\\n' > {d}/data.csv")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert versions(d) == ["v1"]
    # good rows go in, quoted commas and newlines too
    r = sh(f"""printf '1,2,3,4,"a,b\\nc"\\n' >> {d}/data.csv""")
    assert r.returncode == 0, r.stderr
    r = sh(f"echo 5.0,3.6,1.4,0.2,setosa >> {d}/data.csv")
    assert r.returncode == 0, r.stderr
    assert versions(d) == ["v1", "v2", "v3"]


def test_a_tab_separated_file_is_refused_with_a_hint(mlfs):
    d = mlfs.mnt / "datasets" / "t"
    d.mkdir()
    mlfs.expect("rejected")
    sh(f"printf 'a\\tb\\n1\\t2\\n' > {d}/data.csv")  # close: the hint
    assert "looks tab-separated: use commas" in mlfs.errors()
    assert versions(d) == []


def test_ebusy_says_what_holds_it(mlfs):
    from conftest import wait_job
    import json
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    os.symlink("v1", d / "prod")
    mlfs.expect("rejected")
    r = sh(f"rmdir {d}/v1")
    assert r.returncode != 0 and "busy" in r.stderr
    assert 'datasets/iris/v1: busy: alias "prod" points to it' in \
        mlfs.errors()
    os.unlink(d / "prod")
    (mlfs.mnt / "train" / "j.json").write_text(json.dumps(
        {"dataset": "iris", "algorithm": "logistic", "model": "m"}))
    assert wait_job(mlfs.mnt, "j") == "succeeded\n"
    r = sh(f"rmdir {d}")
    assert r.returncode != 0 and "busy" in r.stderr
    assert "datasets/iris: busy: model m was trained on v1" in mlfs.errors()


def test_numbers_print_the_way_people_write_them(mlfs):
    import re
    d = mlfs.mnt / "datasets" / "iris"
    d.mkdir()
    (d / "data.csv").write_text(IRIS)
    stats = (d / "stats").read_text()
    assert '"min": 4.3' in stats, stats[:400]
    # every real in its shortest round-trip form (as Python's repr)
    for tok in re.findall(r"-?\d+\.\d+(?:[eE][+-]?\d+)?", stats):
        assert repr(float(tok)) == tok, tok


def test_cache_commands_fail_the_shells_echo(mlfs):
    """A .mlfs/cache command runs in the write that completes its line."""
    cache = mlfs.mnt / ".mlfs" / "cache"
    mlfs.expect("unknown command")
    r = sh(f"echo frobnicate > {cache}")
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r.stderr
    assert 'unknown command "frobnicate"' in mlfs.errors()
    mlfs.expect("no stored content")
    r = sh(f"echo prefetch datasets/nosuch/data.csv > {cache}")
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r.stderr
    assert "datasets/nosuch/data.csv" in mlfs.errors()
    # good commands, one per line, in one write and in several
    r = sh(f"printf 'sync\\ngc\\n' > {cache}")
    assert r.returncode == 0, r.stderr
    r = sh(f"exec 3>{cache}; echo sync >&3; echo gc >&3; exec 3>&-")
    assert r.returncode == 0, r.stderr
    # the second line's refusal fails its own write, after the first ran
    r = sh(f"exec 3>{cache}; echo sync >&3 && echo nope >&3")
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r.stderr
    # a last line without a newline runs at close
    with open(cache, "w") as f:
        f.write("sync")
