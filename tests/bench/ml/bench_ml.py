#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_ml.py - the scikit-learn side of bench_ml.sh (run it with Debian's
/usr/bin/python3, which has numpy and scikit-learn).

  bench_ml.py gen DIR [SCALE]
      write the data sets as CSV (a header, features, then the label "y"):
        b1m.csv     1,000,000 x 50, two classes      (make_classification)
        c10.csv       200,000 x 50, ten classes       (n_informative=20)
        reg.csv       500,000 x 50, regression        (make_regression)
        digits.csv      1,797 x 64, ten classes       (load_digits)
        m200k.csv     200,000 x 100, ten classes      (make_classification)
      plus b1m_features.csv: b1m.csv without the label column.  SCALE
      (default 1) multiplies the rows of the synthetic sets (smoke tests).

  bench_ml.py sk ALGO CSV SPLIT RUNS PARAMS_JSON [PICKLE]
      train scikit-learn on exactly the train rows of SPLIT (mlfs's
      jobs/<job>/split: "row,set") of CSV, after a StandardScaler fitted on
      those rows (mlfs standardises the same way), RUNS times in float32
      and RUNS in float64, alternating; time from the numbers in memory to
      the fitted model (train rows, scaler, fit() with its input checks),
      as mlfs's prepare_seconds + fit_seconds; evaluate on the test rows
      (k-means: on the train rows, which are all of them).  ALGO:
      logistic, ridge, mlp, kmeans.  PARAMS_JSON carries the matching
      settings (see bench_ml.sh).  Prints one JSON object: fit_seconds
      (list, float32), fit_only_seconds (fit() alone), metric,
      metric_name, fitted_dtype, n_iter, float64 (the same for float64),
      n_train, n_test, load_seconds, blas (threads), settings.  PICKLE:
      save the float32 (scaler, model).

  bench_ml.py batch CSV PICKLE RUNS
      end-to-end batch scoring: numpy.loadtxt of CSV (a header, then the
      feature columns) + scaler.transform + model.predict_proba, RUNS
      times in float32 and in float64; prints JSON: rows, seconds (list,
      float32), seconds_f64, blas, and the predicted classes of the last
      run as a checksum-friendly count per class.

  bench_ml.py report RESDIR
      the markdown table and notes from bench_ml.sh's result files.

  bench_ml.py agree ANSWERS PICKLE CSV
      mlfs's answers (ANSWERS: "class,p0,p1,..." a row) against
      scikit-learn's predict_proba on CSV (features only), as JSON; exits
      1 when fewer than AGREE_CLASS of the rows get the same class or
      fewer than AGREE_PROB_SHARE have every probability within
      AGREE_PROB_TOL.
"""
import json
import pickle
import sys
import time
import warnings

import numpy as np


def write_csv(path, x, y, names, yfmt):
    fmt = ["%.6g"] * x.shape[1] + [yfmt]
    header = ",".join(names + ["y"])
    data = np.column_stack([x, y])
    np.savetxt(path, data, fmt=fmt, delimiter=",", header=header,
               comments="")


def gen(d, scale=1.0):
    from sklearn.datasets import (load_digits, make_classification,
                                  make_regression)
    t0 = time.perf_counter()

    def n(k):
        return int(k * scale)

    def names(k, p="x"):
        return ["%s%d" % (p, i) for i in range(k)]

    x, y = make_classification(n_samples=n(1_000_000), n_features=50,
                               n_informative=10, n_redundant=5,
                               n_classes=2, random_state=1)
    write_csv(f"{d}/b1m.csv", x, y, names(50), "%d")
    np.savetxt(f"{d}/b1m_features.csv", x, fmt="%.6g", delimiter=",",
               header=",".join(names(50)), comments="")
    x, y = make_classification(n_samples=n(200_000), n_features=50,
                               n_informative=20, n_redundant=10,
                               n_classes=10, random_state=2)
    write_csv(f"{d}/c10.csv", x, y, names(50), "%d")
    x, y = make_regression(n_samples=n(500_000), n_features=50,
                           n_informative=30, noise=10.0, random_state=3)
    write_csv(f"{d}/reg.csv", x, y, names(50), "%.6g")
    dg = load_digits()
    write_csv(f"{d}/digits.csv", dg.data, dg.target, names(64, "p"), "%d")
    x, y = make_classification(n_samples=n(200_000), n_features=100,
                               n_informative=40, n_redundant=20,
                               n_classes=10, n_clusters_per_class=2,
                               class_sep=1.5, random_state=0)
    write_csv(f"{d}/m200k.csv", x, y, names(100), "%d")
    print("%.1f" % (time.perf_counter() - t0))


def load(csv):
    with open(csv) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.float64,
                      ndmin=2)
    yi = header.index("y")
    x = np.delete(data, yi, axis=1)
    return x, data[:, yi], header


def read_split(path, n):
    sets = np.empty(n, dtype="U10")
    sets[:] = ""
    with open(path) as f:
        first = f.readline()
        assert first.strip() == "row,set", first
        rows, names = [], []
        for line in f:
            r, s = line.rstrip("\n").split(",")
            rows.append(int(r))
            names.append(s)
    rows = np.array(rows)
    names = np.array(names)
    assert rows.max() < n, "split row out of range"
    tr = np.sort(rows[names == "train"])
    te = np.sort(rows[names == "test"])
    va = np.sort(rows[names == "validation"])
    return tr, va, te


def blas_threads():
    """What BLAS and OpenMP run on in this process, as threadpoolctl sees
    it (numpy and scikit-learn's OpenBLAS, libgomp)."""
    try:
        import threadpoolctl
    except ImportError:
        import os
        return "threadpoolctl missing; OPENBLAS_NUM_THREADS=%s" % (
            os.environ.get("OPENBLAS_NUM_THREADS", "unset (all cores)"))
    return "; ".join("%s %s: %d threads" % (i["internal_api"],
                                            i.get("version") or "",
                                            i["num_threads"])
                     for i in threadpoolctl.threadpool_info()).replace(" :", ":")


def fitted_dtype(model):
    """The dtype the estimator computed in (float32 input can be
    converted to float64 inside fit, as lbfgs does)."""
    for a in ("coef_", "coefs_", "cluster_centers_"):
        v = getattr(model, a, None)
        if v is not None:
            return str((v[0] if isinstance(v, list) else v).dtype)
    return "?"


def sk(algo, csv, split, runs, params, pkl=None):
    from sklearn.preprocessing import StandardScaler
    t0 = time.perf_counter()
    x, y, _ = load(csv)
    tr, va, te = read_split(split, len(x))
    load_s = time.perf_counter() - t0
    ytr = y[tr]
    yte = y[te] if len(te) else None
    ntr = len(tr)
    settings = {}

    def make():
        if algo == "logistic":
            from sklearn.linear_model import LogisticRegression
            c = 1.0 / (ntr * params["l2"])
            settings.update(C=c, solver="lbfgs", max_iter=100)
            mc = "multinomial" if len(np.unique(ytr)) > 2 else "auto"
            settings["multi_class"] = mc
            return LogisticRegression(C=c, solver="lbfgs", max_iter=100,
                                      multi_class=mc)
        if algo == "ridge":
            from sklearn.linear_model import Ridge
            a = params["l2"] * ntr
            settings.update(alpha=a)
            return Ridge(alpha=a)
        if algo == "mlp":
            from sklearn.neural_network import MLPClassifier
            kw = dict(hidden_layer_sizes=tuple(params["hidden"]),
                      max_iter=params["epochs"], early_stopping=False,
                      batch_size=params["batch_size"],
                      learning_rate_init=params["learning_rate"],
                      alpha=params["alpha"], n_iter_no_change=1000,
                      tol=0.0, random_state=params.get("seed", 0))
            settings.update(kw)
            return MLPClassifier(**kw)
        if algo == "kmeans":
            from sklearn.cluster import KMeans
            kw = dict(n_clusters=params["k"], n_init=params["n_init"],
                      random_state=params.get("seed", 0))
            settings.update(kw)
            return KMeans(**kw)
        raise SystemExit("unknown algorithm " + algo)

    def evaluate(model, scaler, dtype):
        if algo == "kmeans":
            return "inertia", float(model.inertia_)
        xte = scaler.transform(x[te].astype(dtype))
        if algo == "ridge":
            from sklearn.metrics import r2_score
            return "r2", float(r2_score(yte, model.predict(xte)))
        return "accuracy", float((model.predict(xte) == yte).mean())

    # The timed span matches mlfs's prepare_seconds + fit_seconds: from
    # the numbers in memory to the fitted model, so taking the train rows
    # (as the given dtype), the StandardScaler and fit() with its input
    # checks.  float32 is what mlfs trains in; float64 is shown beside it,
    # the two alternating so that load on the machine falls on both.
    dtypes = (np.float32, np.float64)
    spans = {d: [] for d in dtypes}
    fits = {d: [] for d in dtypes}
    last = {}
    for _ in range(runs):
        for dtype in dtypes:
            model = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                xtr = x[tr].astype(dtype)
                scaler = StandardScaler()
                xtr = scaler.fit_transform(xtr)
                t_fit = time.perf_counter()
                if algo == "kmeans":
                    model.fit(xtr)
                else:
                    model.fit(xtr, ytr)
                t_end = time.perf_counter()
            spans[dtype].append(t_end - t)
            fits[dtype].append(t_end - t_fit)
            last[dtype] = (scaler, model)
            del xtr
    out = {}
    for dtype in dtypes:
        scaler, model = last[dtype]
        name, metric = evaluate(model, scaler, dtype)
        n_iter = getattr(model, "n_iter_", None)
        if n_iter is not None:
            n_iter = int(np.max(n_iter))
        out[np.dtype(dtype).name] = {
            "fit_seconds": spans[dtype], "fit_only_seconds": fits[dtype],
            "metric": metric, "n_iter": n_iter,
            "fitted_dtype": fitted_dtype(model)}
    if pkl:
        with open(pkl, "wb") as f:
            pickle.dump(last[np.float32], f)
    f32 = out["float32"]
    print(json.dumps({"fit_seconds": f32["fit_seconds"],
                      "fit_only_seconds": f32["fit_only_seconds"],
                      "metric": f32["metric"], "metric_name": name,
                      "fitted_dtype": f32["fitted_dtype"],
                      "n_iter": f32["n_iter"], "float64": out["float64"],
                      "n_train": ntr, "n_validation": len(va),
                      "n_test": len(te), "load_seconds": load_s,
                      "blas": blas_threads(), "settings": settings}))


def batch(csv, pkl, runs):
    with open(pkl, "rb") as f:
        scaler, model = pickle.load(f)
    secs = {np.float32: [], np.float64: []}
    rows, p = 0, None
    for _ in range(runs):
        for dtype in secs:
            t = time.perf_counter()
            x = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=dtype,
                           ndmin=2)
            p = model.predict_proba(scaler.transform(x))
            secs[dtype].append(time.perf_counter() - t)
            rows = len(x)
            del x
    print(json.dumps({"rows": rows, "seconds": secs[np.float32],
                      "seconds_f64": secs[np.float64],
                      "blas": blas_threads(),
                      "classes": np.bincount(p.argmax(1)).tolist()}))


# Agreement of mlfs's batch answers with scikit-learn's on the same rows.
# Both models minimise the same convex loss (logistic, C = 1/(n l2)) on
# the same rows, so they differ only by where each solver stopped and by
# float32 rounding: their probabilities differ by about |dw . x|, a few
# 1e-3 here.  A row flips class only when it lies within that of the
# boundary (p near 0.5), which is a fraction of a percent of the rows.
# A bug (a wrong column, a wrong scale, classes swapped) moves most rows.
AGREE_CLASS = 0.995     # share of rows with the same class, at least
AGREE_PROB_TOL = 0.01   # |p_mlfs - p_sklearn| on every class, at most ...
AGREE_PROB_SHARE = 0.999    # ... on this share of rows, at least


def agree(answers, pkl, csv):
    with open(pkl, "rb") as f:
        scaler, model = pickle.load(f)
    x = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.float32,
                   ndmin=2)
    prob = model.predict_proba(scaler.transform(x))
    names = ["%d" % c if float(c).is_integer() else "%g" % c
             for c in model.classes_]
    pred = np.array(names)[prob.argmax(1)]
    got_cls, got_p = [], []
    with open(answers) as f:
        for line in f:
            fields = line.rstrip("\n").split(",")
            got_cls.append(fields[0])
            got_p.append([float(v) for v in fields[1:]])
    n = len(got_cls)
    if n != len(pred) or any(len(v) != len(names) for v in got_p):
        print(json.dumps({"rows": n, "expected": len(pred),
                          "error": "answers do not match the rows"}))
        return 1
    same = float((np.array(got_cls) == pred).mean())
    diff = np.abs(np.array(got_p) - prob).max(axis=1)
    within = float((diff <= AGREE_PROB_TOL).mean())
    ok = same >= AGREE_CLASS and within >= AGREE_PROB_SHARE
    print(json.dumps({"rows": n, "agree": same, "prob_within": within,
                      "prob_tol": AGREE_PROB_TOL,
                      "prob_max_diff": float(diff.max()),
                      "prob_p99_diff": float(np.percentile(diff, 99)),
                      "need_class": AGREE_CLASS,
                      "need_prob": AGREE_PROB_SHARE, "ok": ok}))
    return 0 if ok else 1


def median(v):
    v = sorted(v)
    n = len(v)
    if n == 0:
        return float("nan")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def met(ok):
    return "yes" if ok else "**no**"


def shown(fmt, v):
    """v as the report prints it, and the number that string says: goals
    are judged on the printed figures, so a reader can check each one."""
    text = fmt % v
    return text, float(text)


def tsv(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    rows.append(line.rstrip("\n").split("\t"))
    except FileNotFoundError:
        pass
    return rows


def log_facts(path):
    """The lines of a job log that say how the fit went."""
    keep = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if any(w in line for w in ("parsed", "iterations", "epoch", "fit in",
                                       "converged", "stopped", "n_init",
                                       "inertia", "lbfgs", "jitter")):
                keep.append(line)
    return keep[-4:]


LABEL = {
    "b1m-logistic": "b1m 1M x 50, 2 classes, logistic",
    "c10-logistic": "c10 200k x 50, 10 classes, logistic",
    "reg-ridge": "reg 500k x 50, ridge (linear)",
    "digits-logistic": "digits 1797 x 64, logistic",
    "digits-mlp": "digits 1797 x 64, MLP [64]",
    "digits-kmeans": "digits 1797 x 64, k-means k=10",
    "m200k-mlp": "m200k 200k x 100, 10 classes, MLP [64]",
}
ORDER = ["b1m-logistic", "m200k-mlp", "c10-logistic", "reg-ridge",
         "digits-logistic", "digits-mlp", "digits-kmeans"]


def report(res):
    import os
    rows = []       # (measurement, mlfs, peer, ratio, goal, met)
    notes = []
    misses = []
    fit_ratios = {}
    details = []
    seen = {"mlfs": set(), "sk": set()}
    for name in ORDER:
        d = os.path.join(res, "train", name)
        if not os.path.isdir(d):
            continue
        cls = open(os.path.join(d, "class")).read().strip()
        sk = json.load(open(os.path.join(d, "sk.json")))
        ms = []
        i = 1
        while os.path.exists(os.path.join(d, "mlfs-%d.metrics.json" % i)):
            ms.append(json.load(open(os.path.join(d, "mlfs-%d.metrics.json" % i))))
            i += 1
        mname = sk["metric_name"]
        label = LABEL.get(name, name)
        seen["mlfs"].update(str(m.get("blas_threads", "?")) for m in ms)
        seen["sk"].add(sk["blas"])
        f64 = sk["float64"]
        if mname == "inertia":
            mt, mv = shown("%.1f", ms[0][mname])
            st, sv = shown("%.1f", sk["metric"])
            dt, diff = shown("%+.2f", (mv - sv) / sv * 100)
            q = ("%s: inertia (all %d rows)" % (label, sk["n_train"]),
                 mt, st + " (float64 %.1f)" % f64["metric"],
                 dt + " %", "within 2 %", met(abs(diff) <= 2.0))
            ok = abs(diff) <= 2.0
        else:
            mt, mv = shown("%.4f", ms[0][mname])
            st, sv = shown("%.4f", sk["metric"])
            dt, diff = shown("%+.2f", (mv - sv) * 100)
            lim = 0.5 if cls == "large" else 2.0
            what = "test accuracy" if mname == "accuracy" else "test r2"
            unit = "pp" if mname == "accuracy" else "points (x100)"
            q = ("%s: %s (%d test rows)" % (label, what, sk["n_test"]),
                 mt, st + " (float64 %.4f)" % f64["metric"],
                 "%s %s" % (dt, unit),
                 "within %g %s" % (lim, unit), met(abs(diff) <= lim))
            ok = abs(diff) <= lim
        if not ok:
            misses.append(q[0])
        rows.append(q)
        # the same span on both sides: from the numbers in memory to the
        # fitted model (see sk() and job_main.c's prepare_seconds)
        mft, mf = shown("%.3f", median([m["prepare_seconds"] + m["fit_seconds"]
                                        for m in ms]))
        sft, sf = shown("%.3f", median(sk["fit_seconds"]))
        s64 = median(f64["fit_seconds"])
        rt, r = fit_ratios[name] = shown("%.2f", mf / sf)
        rows.append(("%s: fit seconds, prepare + fit (median of %d / %d)" % (
                         label, len(ms), len(sk["fit_seconds"])),
                     mft, "%s (float64 %.3f)" % (sft, s64),
                     "%sx (vs float64 %.2fx)" % (rt, mf / s64), "<= 0.5x",
                     met(r <= 0.5) + ("" if r <= 1.0 else " (above 1.0x)")))
        if r > 0.5:
            misses.append(rows[-1][0])
        rows.append(("%s: of which the fit call alone (plugin fit / fit())" % label,
                     "%.3f" % median([m["fit_seconds"] for m in ms]),
                     "%.3f (float64 %.3f)" % (median(sk["fit_only_seconds"]),
                                              median(f64["fit_only_seconds"])),
                     "–", "–", "–"))
        rows.append(("%s: mlfs CSV parse seconds" % label,
                     "%.3f" % median([m["parse_seconds"] for m in ms]),
                     "(scikit-learn side: loadtxt + split %.2f)" % sk["load_seconds"],
                     "–", "–", "–"))
        facts = log_facts(os.path.join(d, "mlfs-1.log"))
        mp = open(os.path.join(d, "mlfs_params")).read().strip()
        det = "- **%s**: mlfs params `%s`; scikit-learn `%s`; " % (
            name, mp, json.dumps(sk["settings"]))
        det += "train/validation/test rows %d/%d/%d; " % (
            sk["n_train"], sk["n_validation"], sk["n_test"])
        det += "scikit-learn fitted in %s (float32 input), %s (float64); " % (
            sk["fitted_dtype"], f64["fitted_dtype"])
        det += "scikit-learn n_iter_ %s; mlfs prepare + fit %s s; " \
               "scikit-learn float32 %s s, float64 %s s" % (
                   sk["n_iter"],
                   ", ".join("%.3f + %.3f" % (m["prepare_seconds"], m["fit_seconds"])
                             for m in ms),
                   ", ".join("%.3f" % v for v in sk["fit_seconds"]),
                   ", ".join("%.3f" % v for v in f64["fit_seconds"]))
        det += "; threads: mlfs job BLAS %s, scikit-learn %s" % (
            ms[0].get("blas_threads", "?"), sk["blas"])
        if facts:
            det += "; mlfs log: " + " | ".join("`%s`" % f for f in facts)
        details.append(det)
        alt = os.path.join(d, "sk-alpha.json")
        if os.path.exists(alt):
            a = json.load(open(alt))
            details.append(
                "  - context: scikit-learn with alpha = l2 x batch_size = %g "
                "(the same penalty as mlfs's l2, since scikit-learn divides "
                "alpha by the batch size): accuracy %.4f (mlfs %.4f, "
                "%+.2f pp), fit %.3f s" % (a["settings"]["alpha"], a["metric"],
                                           mv, (mv - a["metric"]) * 100,
                                           median(a["fit_seconds"])))
        prof = os.path.join(d, "profile.txt")
        if os.path.exists(prof) and os.path.getsize(prof):
            details.append("  - perf of the mlfs-job process (self time, top symbols):\n\n```\n%s```" %
                           open(prof).read())

    wt, worst = max(fit_ratios.values(), key=lambda v: v[1]) \
        if fit_ratios else ("nan", float("nan"))
    rows.append(("All fits: largest mlfs/scikit-learn fit time ratio",
                 wt + "x", "–", "–", "<= 1.0x", met(worst <= 1.0)))
    if worst > 1.0:
        misses.append("a fit above 1.0x scikit-learn")

    lat = {}
    for kind, vals in tsv(os.path.join(res, "lat.tsv")):
        p50, p99, mean = (float(v) for v in vals.split())
        lat.setdefault(kind, []).append((p50, p99, mean))
    if lat:
        _, pt50 = shown("%.1f", median([v[0] for v in lat["passthrough"]]))
        _, pt99 = shown("%.1f", median([v[1] for v in lat["passthrough"]]))
        rows.append(("passthrough_ll open + read 4 KiB + close p50 / p99 (µs)",
                     "–", "%.1f / %.1f" % (pt50, pt99), "–", "(the floor)", "–"))
        for kind, what, lim in (("open", "predict (a): open(O_RDWR) + write row + read answer + close", 1.5),
                                ("handle", "predict (b): write row + read answer on an open handle", 1.0)):
            _, p50 = shown("%.1f", median([v[0] for v in lat[kind]]))
            _, p99 = shown("%.1f", median([v[1] for v in lat[kind]]))
            rt, r = shown("%.2f", p50 / pt50)
            rows.append((what + " p50 / p99 (µs)", "%.1f / %.1f" % (p50, p99),
                         "%.1f / %.1f" % (pt50, pt99),
                         "p50 %sx, p99 %.2fx" % (rt, p99 / pt99),
                         "p50 <= %gx" % lim, met(r <= lim)))
            if r > lim:
                misses.append(what)
        notes.append("Latency rounds (p50/p99/mean µs): " + "; ".join(
            "%s %s" % (k, ", ".join("%.0f/%.0f/%.0f" % v for v in lat[k]))
            for k in lat))

    bm = tsv(os.path.join(res, "batch-mlfs.tsv"))
    if bm:
        vals = [r[0].split() for r in bm]
        nrows = int(vals[0][0])
        msec = median([float(v[1]) for v in vals])
        bs = json.load(open(os.path.join(res, "batch-sk.json")))
        ssec = median(bs["seconds"])
        mrt, mr = shown("%.0f", nrows / msec)
        srt, sr = shown("%.0f", bs["rows"] / ssec)
        s64 = bs["rows"] / median(bs["seconds_f64"])
        rt, r = shown("%.2f", mr / sr)
        rows.append(("Batch scoring, 1M x 50 through one predict handle, rows/s (median of %d / %d)" % (len(vals), len(bs["seconds"])),
                     mrt, "%s (float64 %.0f)" % (srt, s64),
                     "%sx (vs float64 %.2fx)" % (rt, mr / s64), ">= 3x",
                     met(r >= 3)))
        if r < 3:
            misses.append("batch scoring")
        notes.append("Batch scoring seconds: mlfs %s; scikit-learn (loadtxt + transform + predict_proba) float32 %s, float64 %s; scikit-learn threads: %s." % (
            ", ".join(v[1] for v in vals), ", ".join("%.2f" % v for v in bs["seconds"]),
            ", ".join("%.2f" % v for v in bs["seconds_f64"]), bs["blas"]))
        raw = tsv(os.path.join(res, "batch-raw.tsv"))
        if raw:
            v = raw[0][0].split()
            notes.append(
                "Batch scoring with exact 1 MiB writes (rows cut anywhere, "
                "answers read between writes): %s rows in, %s answers out, "
                "%s of them errors, %.0f rows/s. A read scores a pending "
                "partial row as a complete one, so a client that reads "
                "between writes must end each write at a newline (the "
                "measured runs do)." % (v[0], v[3], v[4], float(v[2])))
        ag = os.path.join(res, "agree.json")
        if os.path.exists(ag):
            a = json.load(open(ag))
            rows.append(("Batch answers agreeing with scikit-learn's (%d rows): same class; "
                         "every probability within %g" % (a["rows"], a["prob_tol"]),
                         "%.4f %%; %.4f %%" % (a["agree"] * 100, a["prob_within"] * 100),
                         "–", "–", ">= %g %%; >= %g %%" % (a["need_class"] * 100,
                                                          a["need_prob"] * 100),
                         met(a["ok"])))
            if not a["ok"]:
                misses.append("batch answers disagree with scikit-learn's")
            notes.append("Batch answers against scikit-learn's predict_proba: largest "
                         "probability difference %.2g, 99th percentile %.2g." % (
                             a["prob_max_diff"], a["prob_p99_diff"]))
        rm = os.path.join(res, "rss-main.txt")
        if os.path.exists(rm):
            notes.append("RssAnon of the main daemon after all training, latency and batch runs: %.1f MB." % (
                int(open(rm).read()) / 1024))

    mem = dict(tsv(os.path.join(res, "mem.tsv")))
    if "served" in mem:
        mbt, mb = shown("%.1f", int(mem["served"]) / 1024)
        rows.append(("RssAnon of a fresh daemon with ten models loaded (MB)",
                     mbt, "–", "–", "< 50 MB", met(mb < 50)))
        if mb >= 50:
            misses.append("memory")
        notes.append("RssAnon of the memory daemon (MB): " + ", ".join(
            "%s %.1f" % (k, int(v) / 1024) for k, v in mem.items()) +
            " (mounted; digits imported; ten jobs run; one predict on each model).")

    imp = tsv(os.path.join(res, "import.tsv"))
    if imp:
        notes.append("Import (cp into datasets/<ds>/data.csv, makes v1): " + ", ".join(
            "%s %.0f MB in %.1f s" % (ds, int(b) / 1e6, float(s)) for ds, s, b in imp) + ".")

    threads = {k: " / ".join(sorted(v)) or "?" for k, v in seen.items()}
    print()
    print("## mlfs as an ML platform: scikit-learn and passthrough_ll side by side")
    print()
    print("| Measurement | mlfs | peer | mlfs vs peer | Goal | Met |")
    print("|---|---:|---:|---:|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print("Peers: scikit-learn for training and batch scoring; libfuse's "
          "passthrough_ll (open + read 4 KiB + close, default options) for "
          "predict latency. Fit times cover the same span on both sides, from "
          "the data in memory to the fitted model: mlfs `prepare_seconds` + "
          "`fit_seconds` from metrics.json (labels, split, feature extractor "
          "fitted and applied, which includes turning the table's text into "
          "numbers, then the plugin's fit; CSV parsing excluded); scikit-learn "
          "taking the train rows of `jobs/<job>/split` as float32 (float64 "
          "beside it), a StandardScaler fitted on them and `fit()` with its "
          "input checks (numpy.loadtxt excluded). Threads as each side "
          "reported them: mlfs jobs BLAS %s; scikit-learn %s." % (
              threads["mlfs"], threads["sk"]))
    print()
    print("Misses: " + ("; ".join(misses) if misses else "none") + ".")
    print()
    print("### Details")
    print()
    for d in details:
        print(d)
    for n in notes:
        print("- " + n)
    for p, what in (("profile-batch.txt", "batch scoring (daemon, self time)"),
                    ("profile-handle.txt", "predict (b), write+read on a handle (daemon, self time)"),
                    ("profile-open.txt", "predict (a), open+write+read+close (daemon, self time)")):
        fp = os.path.join(res, p)
        if os.path.exists(fp) and os.path.getsize(fp):
            print("- perf, %s:\n\n```\n%s```" % (what, open(fp).read()))
    print()
    mach = dict(tsv(os.path.join(res, "machine.tsv")))
    load = tsv(os.path.join(res, "load.tsv"))
    print("Machine: %s, nproc %s, %s RAM, kernel %s, libfuse %s; Python %s; "
          "BLAS: %s; mlfs %s; scratch on %s. Runs: %s. Whole run %s minutes "
          "(data generation %s s)." % (
              mach.get("cpu"), mach.get("nproc"), mach.get("mem"),
              mach.get("kernel"), mach.get("libfuse"), mach.get("python"),
              mach.get("blas"), mach.get("mlfs"), mach.get("scratch"),
              mach.get("runs"), mach.get("minutes"), mach.get("gen_seconds")))
    print()
    print("Load average (1/5/15 min) at each step, on a shared 2-core machine: " +
          "; ".join("%s %s" % (k, v) for k, v in load) + ".")


def main():
    a = sys.argv[1:]
    if a[:1] == ["gen"] and len(a) in (2, 3):
        gen(a[1], float(a[2]) if len(a) == 3 else 1.0)
    elif a[:1] == ["sk"] and len(a) in (6, 7):
        sk(a[1], a[2], a[3], int(a[4]), json.loads(a[5]),
           a[6] if len(a) == 7 else None)
    elif a[:1] == ["batch"] and len(a) == 4:
        batch(a[1], a[2], int(a[3]))
    elif a[:1] == ["agree"] and len(a) == 4:
        sys.exit(agree(a[1], a[2], a[3]))
    elif a[:1] == ["report"] and len(a) == 2:
        report(a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
