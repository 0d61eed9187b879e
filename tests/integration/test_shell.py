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
