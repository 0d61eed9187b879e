"""HTTP beside the mount (-o http): the Open Inference Protocol v2 and
/metrics, on a unix socket (callers by SO_PEERCRED) and on TCP (callers
by token), through curl, Python requests, raw sockets and the files,
with the files' permissions, limits and bad requests."""
import json
import os
import select
import socket
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import MLFS, NOBODY, as_user
from test_deployments import deploy, two_models
from test_train import IRIS, iris, train

TOKEN = "root-token-0123456789abcdef"
NOBODY_TOKEN = "nobody-token-0123456789abcdef"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def rows(n):
    return [[float(v) for v in l.split(",")[:4]]
            for l in IRIS.splitlines()[1:n + 1]]


def infer_body(data, **extra):
    return json.dumps({"inputs": [{"name": "x", "shape": [len(data), 4],
                                   "datatype": "FP64", "data": data}],
                       **extra})


def curl(sock, path, data=None, uid=None, method=None):
    """curl over the unix socket as uid: (status, parsed body)."""
    argv = ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", sock,
            f"http://mlfs{path}"]
    if data is not None:
        argv += ["--data-binary", "@-", "-H",
                 "Content-Type: application/json"]
    if method:
        argv += ["-X", method]
    if uid is None:
        r = subprocess.run(argv, input=data, capture_output=True, text=True,
                           timeout=60)
    else:
        r = as_user(argv, uid=uid, gid=uid, input=data)
    body, _, code = r.stdout.rpartition("\n")
    try:
        return int(code), json.loads(body) if body else None
    except ValueError:
        return int(code), body


def tcp_mount(mlfs_factory, tmp_path):
    tok = tmp_path / "tokens"
    tok.write_text(f"# uid token\n0 {TOKEN}\n{NOBODY} {NOBODY_TOKEN}\n")
    os.chmod(tok, 0o600)
    return mlfs_factory(opts=["allow_other", "http=127.0.0.1:0",
                              f"http_token={tok}"], public=True)


def unix_mount(mlfs_factory, extra=()):
    d = tempfile.mkdtemp(prefix="mlfs-http-", dir="/tmp")
    os.chmod(d, 0o755)
    sock = os.path.join(d, "s")
    m = mlfs_factory(opts=["allow_other", f"http=unix:{sock}", *extra],
                     public=True)
    return m, sock


def test_unix_socket_endpoints_and_the_same_answers_as_the_file(
        mlfs_factory):
    m, sock = unix_mount(mlfs_factory)
    assert (m.mnt / ".mlfs/http").read_text() == f"unix:{sock}\n"
    assert oct(os.stat(sock).st_mode & 0o777) == "0o666"
    iris(m)
    assert train(m, "j", {"dataset": "iris", "algorithm": "logistic",
                          "model": "iris"}) == "succeeded\n"
    assert curl(sock, "/v2") == (200, {"name": "mlfs", "version": "0.1.0",
                                       "extensions": ["feedback"]})
    assert curl(sock, "/v2/health/live") == (200, {"live": True})
    assert curl(sock, "/v2/health/ready") == (200, {"ready": True})
    code, meta = curl(sock, "/v2/models/iris")
    assert code == 200
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert meta["platform"] == "mlfs/logistic"
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "proba", "datatype": "FP64", "shape": [-1, 3]}]
    assert curl(sock, "/v2/models/iris/versions/1")[1] == meta
    assert curl(sock, "/v2/models/iris/ready") == \
        (200, {"name": "iris", "ready": True})

    # [N, F], and one tensor per input: the same answers as the file
    data = rows(30)
    code, a = curl(sock, "/v2/models/iris/infer", infer_body(data, id="q1"))
    assert code == 200, a
    assert a["id"] == "q1" and a["model_name"] == "iris"
    assert a["model_version"] == "1"
    by_name = {"inputs": [{"name": f, "shape": [30], "datatype": "FP64",
                           "data": [r[i] for r in data]}
                          for i, f in enumerate(FEATURES)]}
    code, b = curl(sock, "/v2/models/iris/infer", json.dumps(by_name))
    assert code == 200 and b["outputs"] == a["outputs"]
    lines = "".join(json.dumps(dict(zip(FEATURES, r))) + "\n" for r in data)
    # the file: rows written on a handle, answers read back from it
    p = m.mnt / "models/iris/predict"
    with open(p, "r+") as f:
        f.write(lines)
        f.flush()
        answers = [json.loads(l) for l in f.read().splitlines()]
    out = {o["name"]: o for o in a["outputs"]}
    assert out["predict"]["data"] == [x["prediction"] for x in answers]
    classes = meta["parameters"]["classes"]
    assert out["proba"]["shape"] == [30, 3]
    assert out["proba"]["data"] == [x["probabilities"][c] for x in answers
                                    for c in classes]
    # outputs asked for by name
    code, c = curl(sock, "/v2/models/iris/infer",
                   infer_body(data[:2], outputs=[{"name": "predict"}]))
    assert code == 200 and [o["name"] for o in c["outputs"]] == ["predict"]


def test_tcp_needs_a_token_and_requests_gets_what_curl_gets(
        mlfs_factory, tmp_path):
    m = tcp_mount(mlfs_factory, tmp_path)
    addr = (m.mnt / ".mlfs/http").read_text().strip()
    host, port = addr.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    base = f"http://{addr}"
    iris(m)
    assert train(m, "j", {"dataset": "iris", "algorithm": "logistic",
                          "model": "iris"}) == "succeeded\n"
    r = requests.get(base + "/v2/models/iris", timeout=10)
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = requests.get(base + "/v2/models/iris", timeout=10,
                     headers={"Authorization": "Bearer " + TOKEN[:-1]})
    assert r.status_code == 401
    auth = {"Authorization": "Bearer " + TOKEN}
    body = infer_body(rows(10))
    r = requests.post(base + "/v2/models/iris/infer", data=body,
                      headers=auth, timeout=10)
    assert r.status_code == 200
    c = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer " + TOKEN,
                        "--data-binary", "@-",
                        base + "/v2/models/iris/infer"],
                       input=body, capture_output=True, text=True)
    assert json.loads(c.stdout) == r.json()
    # a token's uid is the caller: nobody may not read a private model
    os.chmod(m.mnt / "models/iris", 0o700)
    r = requests.post(base + "/v2/models/iris/infer", data=body, timeout=10,
                      headers={"Authorization": "Bearer " + NOBODY_TOKEN})
    assert r.status_code == 403 and "uid 65534" in r.json()["error"]
    r = requests.post(base + "/v2/models/iris/infer", data=body,
                      headers=auth, timeout=10)
    assert r.status_code == 200


def test_long_infers_hold_up_their_own_connections_only(mlfs_factory):
    m, sock = unix_mount(mlfs_factory)
    iris(m)
    assert train(m, "j", {"dataset": "iris", "algorithm": "logistic",
                          "model": "iris"}) == "succeeded\n"
    big = infer_body(rows(150) * 1000)           # 150,000 rows each
    slow = [subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
         "--clear-groups", "curl", "-s", "-o", "/dev/null", "--unix-socket",
         sock, "--data-binary", "@-", "http://mlfs/v2/models/iris/infer"],
        stdin=subprocess.PIPE, text=True) for _ in range(6)]
    for p in slow:
        p.stdin.write(big)
        p.stdin.close()
    time.sleep(0.5)                              # all six being scored
    t0 = time.monotonic()
    assert curl(sock, "/v2/health/live")[0] == 200
    assert time.monotonic() - t0 < 3
    for p in slow:
        assert p.wait(timeout=120) == 0


def test_tokenless_connections_count_by_their_owner(mlfs_factory, tmp_path):
    """On loopback a TCP peer's owner is known (/proc/net/tcp): one
    user's idle connections without a token lock only that user out."""
    m = tcp_mount(mlfs_factory, tmp_path)
    host, port = (m.mnt / ".mlfs/http").read_text().strip().rsplit(":", 1)
    script = ("import socket,time,sys\n"
              "ss=[]\n"
              "for i in range(64):\n"
              "    s=socket.create_connection((%r, %s)); ss.append(s)\n"
              "s=socket.create_connection((%r, %s)); s.settimeout(5)\n"
              "print(s.recv(100).decode().split('\\r\\n')[0])\n"
              "sys.stdout.flush()\n"
              "time.sleep(4)\n") % (host, port, host, port)
    p = subprocess.Popen(["setpriv", f"--reuid={NOBODY}",
                          f"--regid={NOBODY}", "--clear-groups",
                          "/usr/bin/python3", "-c", script],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == \
            "HTTP/1.1 503 Service Unavailable"
        r = requests.get(f"http://{host}:{port}/v2/health/ready", timeout=5,
                         headers={"Authorization": "Bearer " + TOKEN})
        assert r.status_code == 200
    finally:
        p.wait(timeout=20)


def test_mount_refuses_bad_http_options(tmp_path):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    store.mkdir()
    mnt.mkdir()

    def mount(*opts):
        return subprocess.run([str(MLFS), "-f", "-o", ",".join(
            ["cache=" + str(tmp_path / "cache"), *opts]), str(store),
            str(mnt)], capture_output=True, text=True, timeout=30)

    r = mount("http=127.0.0.1:0")
    assert r.returncode == 1 and "http_token" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    tok = tmp_path / "tok"
    tok.write_text(f"0 {TOKEN}\n")
    os.chmod(tok, 0o644)
    r = mount("http=127.0.0.1:0", f"http_token={tok}")
    assert r.returncode == 1 and "mode 0600" in r.stderr
    os.chmod(tok, 0o600)
    tok.write_text("0 short\n")
    r = mount("http=127.0.0.1:0", f"http_token={tok}")
    assert r.returncode == 1 and "tok:1" in r.stderr
    tok.write_text(f"0 {TOKEN}\n")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        r = mount(f"http=127.0.0.1:{busy.getsockname()[1]}",
                  f"http_token={tok}")
        assert r.returncode == 1 and "in use" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        busy.close()
    r = mount("http=nonsense")
    assert r.returncode == 1 and "http=nonsense" in r.stderr
    r = mount("http=unix:relative/path")
    assert r.returncode == 1 and "absolute" in r.stderr
    r = mount(f"http_token={tok}")
    assert r.returncode == 1 and "no -o http" in r.stderr
    assert not os.path.ismount(mnt)


BAD = [
    ("not JSON", "{", "line 1"),
    ("not an object", "[1, 2]", "JSON object"),
    ("no inputs", "{}", "\"inputs\""),
    ("inputs not a list", '{"inputs": 3}', "\"inputs\""),
    ("a tensor without a name",
     '{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}',
     "\"name\""),
    ("unknown datatype",
     '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128",'
     ' "data": [1, 2, 3, 4]}]}', "unknown datatype"),
    ("three dimensions",
     '{"inputs": [{"name": "x", "shape": [1, 2, 2], "datatype": "FP64",'
     ' "data": [1, 2, 3, 4]}]}', "shape"),
    ("a huge dimension",
     '{"inputs": [{"name": "x", "shape": [99999999999, 4],'
     ' "datatype": "FP64", "data": [1, 2, 3, 4]}]}', "shape[0]"),
    ("a product past the cap",
     '{"inputs": [{"name": "x", "shape": [4000000, 4000],'
     ' "datatype": "FP64", "data": []}]}', "more than"),
    ("a negative dimension",
     '{"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "FP64",'
     ' "data": [1, 2, 3, 4]}]}', "shape[0]"),
    ("too few values",
     '{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",'
     ' "data": [1, 2, 3, 4]}]}', "4 values for shape [2, 4]"),
    ("wrong width",
     '{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64",'
     ' "data": [1, 2, 3]}]}', "3 columns"),
    ("a fraction in an integer tensor",
     '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64",'
     ' "data": [1, 2.5, 3, 4]}]}', "whole numbers"),
    ("NaN in an integer tensor",
     '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64",'
     ' "data": [1, "NaN", 3, 4]}]}', "whole numbers"),
    ("a string in a float tensor",
     '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",'
     ' "data": [1, "a", 3, 4]}]}', "numbers"),
    ("an unknown input",
     '{"inputs": [{"name": "petals", "shape": [1], "datatype": "FP64",'
     ' "data": [1]}]}', "no input \"petals\""),
    ("a missing input",
     '{"inputs": [{"name": "sepal_length", "shape": [1],'
     ' "datatype": "FP64", "data": [1]}]}', "sepal_width"),
    ("an unknown output",
     '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",'
     ' "data": [1, 2, 3, 4]}], "outputs": [{"name": "logits"}]}',
     "no output"),
    ("nesting past the shape",
     '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",'
     ' "data": [[[[1, 2, 3, 4]]]]}]}', "flat list"),
    ("rows nested unevenly",
     '{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",'
     ' "data": [[[1, 2], [3, 4]], [5, 6, 7, 8]]}]}', "flat list"),
    ("a bad value in a row",
     '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES",'
     ' "data": ["1", "two", "3", "4"]}]}', "not a number"),
]


@pytest.mark.parametrize("uid", [0, NOBODY])
def test_bad_requests_are_400_with_a_reason(mlfs_factory, uid):
    m, sock = unix_mount(mlfs_factory)
    iris(m)
    assert train(m, "j", {"dataset": "iris", "algorithm": "logistic",
                          "model": "iris"}) == "succeeded\n"
    for what, body, reason in BAD:
        code, got = curl(sock, "/v2/models/iris/infer", body, uid=uid)
        assert code == 400, (what, got)
        assert reason in got["error"], (what, got)
    # paths, methods and names
    assert curl(sock, "/v3", uid=uid)[0] == 404
    assert curl(sock, "/v2/models/nope", uid=uid)[0] == 404
    assert curl(sock, "/v2/models/iris/versions/9", uid=uid)[0] == 404
    assert curl(sock, "/v2/models/iris/versions/x/infer", "{}",
                uid=uid)[0] == 404
    assert curl(sock, "/v2/models/iris/infer", uid=uid)[0] == 405
    assert curl(sock, "/v2/models/iris", "{}", uid=uid)[0] == 405
    assert curl(sock, "/metrics", "{}", uid=uid)[0] == 405
    assert curl(sock, "/v2/models/iris/feedback", "{}", uid=uid)[0] == 404
    # raw bytes on the socket: garbage, then a request cut short
    for raw in (b"\x00\xff garbage\r\n\r\n",
                b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 100\r\n\r\n{\"inputs\""):
        script = ("import socket,sys\n"
                  "s=socket.socket(socket.AF_UNIX)\n"
                  f"s.connect({sock!r})\n"
                  f"s.sendall({raw!r})\n"
                  "s.shutdown(socket.SHUT_WR)\n"
                  "s.settimeout(15)\n"
                  "d=b''\n"
                  "while True:\n"
                  "    c=s.recv(4096)\n"
                  "    if not c: break\n"
                  "    d+=c\n"
                  "print(d[:12].decode(errors='replace'))\n")
        r = as_user(["/usr/bin/python3", "-c", script], uid=uid, gid=uid)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "" or r.stdout.startswith("HTTP/1.1 4") or \
            r.stdout == "\n", r.stdout
    # the daemon is still up, and still answers
    code, a = curl(sock, "/v2/models/iris/infer", infer_body(rows(2)),
                   uid=uid)
    assert code == 200, a


def test_permissions_follow_the_files(mlfs_factory):
    m, sock = unix_mount(mlfs_factory)
    two_models(m)
    d, r = deploy(m, "web", {"candidates": ["m@1"]})
    assert r.returncode == 0, r.stderr
    body = infer_body(rows(3))
    # everyone may score with a 0755 model and a 0755 deployment
    code, a = curl(sock, "/v2/models/web/infer", body, uid=NOBODY)
    assert code == 200, a
    ids = {o["name"]: o for o in a["outputs"]}["id"]["data"]
    assert len(ids) == 3 and all(i.startswith("web-") for i in ids)
    # feedback is the owner's and the group's (feedback: 0620)
    fb = json.dumps({"id": ids[0], "truth": "setosa"})
    code, got = curl(sock, "/v2/models/web/feedback", fb, uid=NOBODY)
    assert code == 403, got
    code, got = curl(sock, "/v2/models/web/feedback", fb)
    assert code == 200 and got == {"received": 1}
    lines = [json.loads(l) for l in (d / "predictions").read_text()
             .splitlines()]
    assert {l.get("id") for l in lines} >= set(ids)
    # private objects: 403 to others, still 200 to their owner
    os.chmod(m.mnt / "models/m", 0o700)
    os.chmod(d, 0o700)
    for path in ("/v2/models/m", "/v2/models/m/ready", "/v2/models/web"):
        assert curl(sock, path, uid=NOBODY)[0] == 403, path
        assert curl(sock, path)[0] == 200, path
    assert curl(sock, "/v2/models/m/infer", body, uid=NOBODY)[0] == 403
    # /metrics leaves out what the caller may not read
    code, text = curl(sock, "/metrics", uid=NOBODY)
    assert code == 200 and "mlfs_fuse_operations_total" in text
    assert 'deployment="web"' not in text
    code, text = curl(sock, "/metrics")
    assert 'deployment="web"' in text
    p = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    # nobody's deployment named as root's model does not take its
    # requests: the name means the model while they differ in owner
    os.chmod(m.mnt / "models/m", 0o755)
    r = as_user(["mkdir", f"{m.mnt}/deployments/m"])
    assert r.returncode == 0, r.stderr
    r = as_user(["bash", "-c", f"echo '{{\"candidates\": [\"m@1\"]}}' > "
                 f"{m.mnt}/deployments/m/spec"])
    assert r.returncode == 0, r.stderr
    code, a = curl(sock, "/v2/models/m/infer", body)
    assert code == 200
    assert "id" not in {o["name"] for o in a["outputs"]}
    assert (m.mnt / "deployments/m/predictions").read_text() == ""
    code, meta = curl(sock, "/v2/models/m")
    assert "serving" not in meta["parameters"]
    assert curl(sock, "/v2/models/m/versions/4294967297")[0] == 404
    # one HELP and TYPE a family
    helps = [l.split()[2] for l in text.splitlines()
             if l.startswith("# HELP")]
    assert len(helps) == len(set(helps))


def test_body_limit_connection_limit_and_header_deadline(mlfs_factory):
    m, sock = unix_mount(mlfs_factory, extra=["http_max_body=2K"])
    iris(m)
    assert train(m, "j", {"dataset": "iris", "algorithm": "logistic",
                          "model": "iris"}) == "succeeded\n"
    code, got = curl(sock, "/v2/models/iris/infer", infer_body(rows(100)))
    assert code == 413 and "http_max_body" in got["error"]
    assert curl(sock, "/v2/models/iris/infer", infer_body(rows(2)))[0] == 200
    # bodies held at once: two limits' worth a uid (counted as their
    # bytes come), then the connection that goes over is closed
    held = []
    for i in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 2000\r\n\r\n" + b" " * 1500)
        held.append(s)
        time.sleep(0.2)
    # the three reach the threads in any order: one goes over
    ready, _, _ = select.select(held, [], [], 5)
    assert len(ready) == 1
    assert ready[0].recv(100) == b""
    for s in held:
        s.close()
    assert curl(sock, "/v2/models/iris/infer", infer_body(rows(2)))[0] == 200
    # nobody holds 64 connections: the 65th is refused, root still served
    script = ("import socket,time,sys\n"
              "ss=[]\n"
              "for i in range(64):\n"
              "    s=socket.socket(socket.AF_UNIX); s.connect(%r); ss.append(s)\n"
              "time.sleep(0.5)\n"
              "s=socket.socket(socket.AF_UNIX); s.connect(%r)\n"
              "s.settimeout(5)\n"
              "print(s.recv(200).decode().split('\\r\\n')[0])\n"
              "sys.stdout.flush()\n"
              "time.sleep(3)\n") % (sock, sock)
    p = subprocess.Popen(["setpriv", f"--reuid={NOBODY}",
                          f"--regid={NOBODY}", "--clear-groups",
                          "/usr/bin/python3", "-c", script],
                         stdout=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline().strip()
        assert first == "HTTP/1.1 503 Service Unavailable", first
        assert curl(sock, "/v2/health/ready")[0] == 200
    finally:
        p.wait(timeout=20)
    # headers that never finish: shut after 10 s
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    s.settimeout(30)
    while True:
        try:
            s.sendall(b"X-Drip: 1\r\n")
        except OSError:
            break
        try:
            if s.recv(100) == b"":
                break
        except socket.timeout:
            pass
        except OSError:
            break
        time.sleep(1)
        s.settimeout(1)
        if time.monotonic() - t0 > 25:
            break
    took = time.monotonic() - t0
    s.close()
    assert 9 <= took <= 15, took
