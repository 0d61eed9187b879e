#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_prep.py - the Python side of bench_prep.sh (run it with Debian's
/usr/bin/python3, python3-pandas, python3-sklearn and python3-imblearn).

  bench_prep.py gen-smote TRAIN TEST ROWS SEED
      TRAIN: ROWS rows "f00,...,f19,label", 20 numeric features printed
      with 6 decimals, label 1 for the minority (ROWS // 21 rows, spread
      at random) and 0 for the majority (1:20); the majority ~ N(0, I),
      the minority ~ N(mu, I) with mu 0.6 on the first 10 features, so
      that a classifier has something to learn but not everything.
      TEST: ROWS // 4 held-back rows of the same kind.  Prints JSON.

  bench_prep.py smote IN OUT SEED
      the peer of balance/smote: pandas read_csv, imbalanced-learn's
      SMOTE(k_neighbors=5, random_state=SEED).fit_resample, to_csv;
      timed from read_csv to the end of to_csv.  Prints JSON seconds.

  bench_prep.py check-smote IN OUT [K]
      OUT checked as imbalanced-learn would have it: its first rows are
      IN's, unchanged; the classes come out 1:1; every row after them is
      of the minority and lies on a segment between a minority row x of
      IN and one of x's K (5) nearest minority neighbours (sklearn
      NearestNeighbors, Euclidean): s = x + u (n - x), u in [0, 1], within
      1e-9 x (1 + |s|) (OUT's numbers are printed with 17 digits).
      Prints JSON (with the mean u, which is 0.5 for uniform u); exits 1
      on a failed check.

  bench_prep.py classify TEST OUT...
      a LogisticRegression fitted on each balanced OUT, scored on the
      held-back TEST: accuracy and balanced accuracy.  Prints JSON.

  bench_prep.py gen-anon OUT ROWS SEED
      OUT: ROWS rows "email,work_email,alt_email,name,phone,age,income,
      score,visits,balance": three e-mail-like strings (0.1 % of
      alt_email missing), a name and a phone number (the two dropped),
      five numbers; about 100 bytes a row.  Prints JSON.

  bench_prep.py anon IN OUT KEYFILE UID
      the peer of anonymize: pandas read_csv, the three e-mail columns
      hashed as mlfs does (hex HMAC-SHA-256 under the owner's key, itself
      HMAC-SHA-256(KEYFILE's bytes, "mlfs anon v1 uid UID"); hmac.digest,
      OpenSSL's one-shot), name and phone dropped, to_csv; timed from
      read_csv to the end of to_csv.  Prints JSON seconds.

  bench_prep.py check-anon MLFS_OUT PEER_OUT
      every row of the two outputs: the same header, hashes identical,
      missing where missing, numbers equal as numbers.  Prints JSON; exits
      1 on a mismatch.

  bench_prep.py report RESDIR
      the summary: medians, ratios, goals and the checks.
"""
import hashlib
import hmac
import json
import os
import sys
import time

import numpy as np

FEATURES = ["f%02d" % i for i in range(20)]
HASHED = ["email", "work_email", "alt_email"]
DROPPED = ["name", "phone"]
KEPT = ["age", "income", "score", "visits", "balance"]
ANON_COLS = HASHED + DROPPED + KEPT


def now():
    return time.perf_counter()


# ---------------------------------------------------------------- smote

def smote_rows(rng, n):
    minority = n // 21
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, size=minority, replace=False)] = 1
    x = rng.standard_normal((n, len(FEATURES)))
    x[y == 1, :10] += 0.6
    return x, y


def write_smote(path, x, y):
    with open(path, "w") as fp:
        fp.write(",".join(FEATURES + ["label"]) + "\n")
        fmt = ",".join(["%.6f"] * len(FEATURES)) + ",%d\n"
        for i in range(0, len(y), 10000):
            fp.write("".join(fmt % (tuple(r) + (int(c),))
                             for r, c in zip(x[i:i + 10000].tolist(),
                                             y[i:i + 10000].tolist())))


def gen_smote(train, test, rows, seed):
    rng = np.random.default_rng(seed)
    x, y = smote_rows(rng, rows)
    write_smote(train, x, y)
    tx, ty = smote_rows(rng, rows // 4)
    write_smote(test, tx, ty)
    print(json.dumps({"rows": rows, "minority": int(y.sum()),
                      "majority": int(rows - y.sum()),
                      "features": len(FEATURES),
                      "bytes": os.path.getsize(train),
                      "test_rows": len(ty)}))


def smote(inp, out, seed):
    t0 = now()
    import pandas as pd
    from imblearn.over_sampling import SMOTE
    t1 = now()
    df = pd.read_csv(inp)
    t2 = now()
    x, y = SMOTE(k_neighbors=5, random_state=seed).fit_resample(
        df[FEATURES], df["label"])
    x["label"] = y
    t3 = now()
    x.to_csv(out, index=False)
    t4 = now()
    print(json.dumps({"import": t1 - t0, "read": t2 - t1, "smote": t3 - t2,
                      "write": t4 - t3, "total": t4 - t1, "rows": len(x)}))


def read_xy(path):
    import pandas as pd
    df = pd.read_csv(path)
    return df[FEATURES].to_numpy(dtype=np.float64), \
        df["label"].to_numpy(dtype=np.int64)


def check_smote(inp, out, k=5):
    from sklearn.neighbors import NearestNeighbors
    x0, y0 = read_xy(inp)
    x1, y1 = read_xy(out)
    n = len(y0)
    res = {"rows_in": n, "rows_out": len(y1), "k": k, "failed": []}
    counts = {int(c): int((y1 == c).sum()) for c in np.unique(y1)}
    res["counts_out"] = counts
    if len(y1) < n or not (np.array_equal(x1[:n], x0) and
                           np.array_equal(y1[:n], y0)):
        res["failed"].append("the input's rows are not OUT's first rows")
    if len(set(counts.values())) != 1:
        res["failed"].append("classes not 1:1: %s" % counts)
    minority = np.bincount(y0).argmin()
    xm = x0[y0 == minority]
    s = x1[n:]
    if not (y1[n:] == minority).all():
        res["failed"].append("synthetic rows of another class")
    res["synthetic"] = len(s)
    # each minority row's k nearest minority rows, itself left out
    nn = NearestNeighbors(n_neighbors=k + 1).fit(xm)
    _, idx = nn.kneighbors(xm)
    me = np.arange(len(xm))[:, None]
    neigh = np.array([[j for j in r if j != i][:k]
                      for i, r in zip(me[:, 0], idx)])
    # a synthetic row is within |n - x| of its x: try its CAND nearest
    # minority rows as x first, then every segment for the rest
    cand = min(40, len(xm))
    _, near = NearestNeighbors(n_neighbors=cand).fit(xm).kneighbors(s)
    best = np.full(len(s), np.inf)
    ubest = np.zeros(len(s))
    for a in range(0, len(s), 2000):
        ss = s[a:a + 2000]                          # [b, d]
        xs = xm[near[a:a + 2000]]                   # [b, c, d]
        ns = xm[neigh[near[a:a + 2000]]]            # [b, c, k, d]
        dv = ns - xs[:, :, None, :]
        wv = (ss[:, None, :] - xs)[:, :, None, :]
        dd = (dv * dv).sum(-1)
        u = np.clip((wv * dv).sum(-1) / np.where(dd > 0, dd, 1), 0, 1)
        r = np.sqrt(((wv - u[..., None] * dv) ** 2).sum(-1))
        flat = r.reshape(len(ss), -1)
        at = flat.argmin(1)
        best[a:a + 2000] = flat[np.arange(len(ss)), at]
        ubest[a:a + 2000] = u.reshape(len(ss), -1)[np.arange(len(ss)), at]
    tol = 1e-9 * (1 + np.abs(s).max(1))
    miss = np.nonzero(best > tol)[0]
    res["beyond_candidates"] = int(len(miss))
    if len(miss):
        xa = np.repeat(xm, k, axis=0)
        dv = xm[neigh.reshape(-1)] - xa
        dd = (dv * dv).sum(-1)
        for i in miss[:5000]:
            wv = s[i] - xa
            u = np.clip((wv * dv).sum(-1) / np.where(dd > 0, dd, 1), 0, 1)
            r = np.sqrt(((wv - u[:, None] * dv) ** 2).sum(-1))
            best[i] = r.min()
            ubest[i] = u[r.argmin()]
    bad = int((best > tol).sum())
    res["off_segment"] = bad
    res["max_distance_to_segment"] = float(best.max()) if len(s) else 0.0
    res["mean_u"] = float(ubest.mean()) if len(s) else 0.0
    if bad:
        res["failed"].append("%d synthetic rows on no segment to one of "
                             "the %d nearest neighbours" % (bad, k))
    print(json.dumps(res))
    return 1 if res["failed"] else 0


def classify(test, outs):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    tx, ty = read_xy(test)
    res = {}
    for path in outs:
        x, y = read_xy(path)
        m = LogisticRegression(max_iter=1000).fit(x, y)
        p = m.predict(tx)
        res[os.path.basename(path)] = {
            "accuracy": float(accuracy_score(ty, p)),
            "balanced_accuracy": float(balanced_accuracy_score(ty, p))}
    print(json.dumps(res))


# ---------------------------------------------------------------- anonymize

FIRST = ["ann", "bob", "cy", "dora", "eli", "fay", "gus", "hal", "ida",
         "jo", "kim", "lou", "max", "ned", "ola", "pat"]
DOMAINS = ["ex.org", "mail.com", "corp.net", "uni.edu"]


def gen_anon(out, rows, seed):
    rng = np.random.default_rng(seed)
    with open(out, "w") as fp:
        fp.write(",".join(ANON_COLS) + "\n")
        for a in range(0, rows, 100000):
            b = min(rows, a + 100000)
            m = b - a
            ids = np.arange(a, b)
            first = rng.integers(0, len(FIRST), m).tolist()
            dom = rng.integers(0, len(DOMAINS), m).tolist()
            age = rng.integers(18, 90, m).tolist()
            income = rng.integers(0, 200000, m).tolist()
            score = np.round(rng.random(m), 4).tolist()
            visits = rng.poisson(3, m).tolist()
            bal = np.round(rng.normal(1000, 500, m), 2).tolist()
            alt_missing = (rng.random(m) < 0.001).tolist()
            phone = rng.integers(10 ** 8, 10 ** 9, m).tolist()
            lines = []
            for i in range(m):
                f = FIRST[first[i]]
                d = DOMAINS[dom[i]]
                n = ids[i]
                lines.append("%s%d@%s,%s.w%d@%s,%s,%s %d,+33%d,%d,%d,%s,"
                             "%d,%s\n" % (
                                 f, n, d, f, n, DOMAINS[(dom[i] + 1) % 4],
                                 "" if alt_missing[i] else
                                 "x%d@%s" % (n * 7, d),
                                 f.title(), n % 9973, phone[i], age[i],
                                 income[i], score[i], visits[i], bal[i]))
            fp.write("".join(lines))
    print(json.dumps({"rows": rows, "columns": len(ANON_COLS),
                      "bytes": os.path.getsize(out)}))


def owner_key(keyfile, uid):
    with open(keyfile, "rb") as fp:
        master = fp.read()
    return hmac.digest(master, b"mlfs anon v1 uid %d" % uid, "sha256")


def anon(inp, out, keyfile, uid):
    t0 = now()
    import pandas as pd
    key = owner_key(keyfile, uid)
    t1 = now()
    df = pd.read_csv(inp, dtype={c: str for c in HASHED + DROPPED})
    t2 = now()
    df = df.drop(columns=DROPPED)
    for c in HASHED:
        df[c] = [hmac.digest(key, v.encode(), "sha256").hex()
                 if isinstance(v, str) else v for v in df[c]]
    t3 = now()
    df.to_csv(out, index=False)
    t4 = now()
    print(json.dumps({"import": t1 - t0, "read": t2 - t1, "hash": t3 - t2,
                      "write": t4 - t3, "total": t4 - t1, "rows": len(df)}))


def check_anon(mlfs_out, peer_out):
    res = {"rows": 0, "mismatches": 0, "examples": [], "failed": []}
    with open(mlfs_out) as a, open(peer_out) as b:
        ha, hb = a.readline().rstrip("\n"), b.readline().rstrip("\n")
        want = ",".join(HASHED + KEPT)
        if ha != want or hb != want:
            res["failed"].append("headers %r and %r, not %r" % (ha, hb, want))
        nh = len(HASHED)
        for la, lb in zip(a, b):
            res["rows"] += 1
            fa = la.rstrip("\n").split(",")
            fb = lb.rstrip("\n").split(",")
            same = len(fa) == len(fb) and fa[:nh] == fb[:nh]
            if same:
                for x, y in zip(fa[nh:], fb[nh:]):
                    if (x == "") != (y == "") or \
                            (x and float(x) != float(y)):
                        same = False
            if not same:
                res["mismatches"] += 1
                if len(res["examples"]) < 3:
                    res["examples"].append(res["rows"])
        if a.readline() or b.readline():
            res["failed"].append("the outputs have different row counts")
    if res["mismatches"]:
        res["failed"].append("%d rows differ" % res["mismatches"])
    print(json.dumps(res))
    return 1 if res["failed"] else 0


# ---------------------------------------------------------------- report

def median(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def load_jsonl(path):
    with open(path) as fp:
        return [json.loads(ln) for ln in fp if ln.strip()]


def job_phases(rs):
    def m(k):
        v = [r[k] for r in rs if r.get(k) is not None]
        return median(v) if v else float("nan")

    return ("job: read %.2f, step %.2f, write %.2f; the rest (start, "
            "publish) %.2f" % (m("job_read"), m("job_step"), m("job_write"),
                               m("job_rest")))


def report(res):
    def rd(name):
        with open(os.path.join(res, name)) as fp:
            return json.load(fp)

    def met(ok):
        return "met" if ok else "missed"

    print("\n==== mlfs prepare benchmark: summary ====")
    with open(os.path.join(res, "machine.tsv")) as fp:
        for ln in fp:
            k, v = ln.rstrip("\n").split("\t", 1)
            print("%-12s %s" % (k, v))
    gs = rd("gen-smote.json")
    ms = load_jsonl(os.path.join(res, "mlfs-smote.jsonl"))
    ps = load_jsonl(os.path.join(res, "peer-smote.jsonl"))
    if ms and ps:
        mt, pt = median([r["total"] for r in ms]), \
            median([r["total"] for r in ps])
        print("\n1. SMOTE: %d x %d, %d:%d -> 1:1 (k 5, seed 1), %.1f MB CSV" % (
            gs["rows"], gs["features"], gs["minority"], gs["majority"],
            gs["bytes"] / 1e6))
        print("   mlfs     %7.2f s  median of %d (%s)" % (
            mt, len(ms), " ".join("%.2f" % r["total"] for r in ms)))
        print("            cp %.2f, prepare to wait %.2f (%s), read out "
              "%.2f" % (median([r["cp"] for r in ms]),
                        median([r["job"] for r in ms]), job_phases(ms),
                        median([r["read"] for r in ms])))
        print("   imblearn %7.2f s  median of %d (%s)" % (
            pt, len(ps), " ".join("%.2f" % r["total"] for r in ps)))
        print("            read_csv %.2f, fit_resample %.2f, to_csv %.2f "
              "(imports %.2f, not counted)" % tuple(
                  median([r[k] for r in ps])
                  for k in ("read", "smote", "write", "import")))
        print("   imblearn/mlfs %.2fx  goal >= 3x: %s" % (
            pt / mt, met(pt / mt >= 3)))
    cm = rd("check-smote-mlfs.json")
    cp = rd("check-smote-peer.json")
    cl = rd("classify.json")
    print("   check mlfs: counts %s; input rows first and unchanged, %d "
          "synthetic rows, %d off every segment to one of the %d nearest "
          "(largest distance %.2g, mean u %.3f): %s" % (
              cm["counts_out"], cm["synthetic"], cm["off_segment"], cm["k"],
              cm["max_distance_to_segment"], cm["mean_u"],
              "ok" if not cm["failed"] else "FAILED: " + "; ".join(
                  cm["failed"])))
    print("   the same check on imblearn's output: %d off segment, mean u "
          "%.3f: %s" % (cp["off_segment"], cp["mean_u"],
                        "ok" if not cp["failed"] else "FAILED: " +
                        "; ".join(cp["failed"])))
    am, ap = cl["mlfs-smote.csv"], cl["peer-smote.csv"]
    d = abs(am["accuracy"] - ap["accuracy"]) * 100
    print("   LogisticRegression on the held-back %d rows: accuracy mlfs "
          "%.4f, imblearn %.4f (%.2f pp apart, within 1 pp: %s); balanced "
          "accuracy %.4f, %.4f" % (
              gs["test_rows"], am["accuracy"], ap["accuracy"], d,
              "ok" if d <= 1 else "NO", am["balanced_accuracy"],
              ap["balanced_accuracy"]))
    ga = rd("gen-anon.json")
    ma = load_jsonl(os.path.join(res, "mlfs-anon.jsonl"))
    pa = load_jsonl(os.path.join(res, "peer-anon.jsonl"))
    mb = ga["bytes"] / 1e6
    if ma and pa:
        mj = median([r["job"] for r in ma])
        me = median([r["job"] + r["read"] for r in ma])
        pt = median([r["total"] for r in pa])
        print("\n2. anonymize: %d rows x %d columns, %.0f MB CSV "
              "(3 hashed, 2 dropped, 5 kept)" % (ga["rows"], ga["columns"],
                                                 mb))
        print("   mlfs prepare to wait      %7.2f s  %6.0f MB/s  median of "
              "%d (%s)  goal >= 200 MB/s: %s" % (
                  mj, mb / mj, len(ma),
                  " ".join("%.2f" % r["job"] for r in ma),
                  met(mb / mj >= 200)))
        print("   %s" % job_phases(ma))
        print("   mlfs with reading out     %7.2f s  %6.0f MB/s" % (
            me, mb / me))
        print("   pandas + hmac             %7.2f s  %6.0f MB/s  median of "
              "%d (read_csv %.2f, hash %.2f, to_csv %.2f)" % (
                  pt, mb / pt, len(pa),
                  median([r["read"] for r in pa]),
                  median([r["hash"] for r in pa]),
                  median([r["write"] for r in pa])))
        print("   pandas/mlfs %.2fx (prepare to wait), %.2fx (with reading "
              "out)" % (pt / mj, pt / me))
    ca = rd("check-anon.json")
    print("   check: %d rows, hashes and numbers against pandas + hmac: %s" % (
        ca["rows"], "ok" if not ca["failed"] else "FAILED: " +
        "; ".join(ca["failed"])))
    notes = os.path.join(res, "notes.txt")
    if os.path.exists(notes):
        print("\nNotes:")
        with open(notes) as fp:
            for ln in fp:
                print("- " + ln.rstrip("\n"))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "gen-smote" and len(argv) == 6:
        gen_smote(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif cmd == "smote" and len(argv) == 5:
        smote(argv[2], argv[3], int(argv[4]))
    elif cmd == "check-smote" and len(argv) in (4, 5):
        return check_smote(argv[2], argv[3], int(argv[4]) if len(argv) == 5
                           else 5)
    elif cmd == "classify" and len(argv) >= 4:
        classify(argv[2], argv[3:])
    elif cmd == "gen-anon" and len(argv) == 5:
        gen_anon(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "anon" and len(argv) == 6:
        anon(argv[2], argv[3], argv[4], int(argv[5]))
    elif cmd == "check-anon" and len(argv) == 4:
        return check_anon(argv[2], argv[3])
    elif cmd == "report" and len(argv) == 3:
        report(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
