#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_ml.py - the scikit-learn side of bench_ml.sh (run it with Debian's
/usr/bin/python3, which has numpy and scikit-learn).

  bench_ml.py gen DIR
      write the data sets as CSV (a header, features, then the label "y"):
        b1m.csv     1,000,000 x 50, two classes      (make_classification)
        c10.csv       200,000 x 50, ten classes       (n_informative=20)
        reg.csv       500,000 x 50, regression        (make_regression)
        digits.csv      1,797 x 64, ten classes       (load_digits)
        m200k.csv     200,000 x 100, ten classes      (make_classification)
      plus b1m_features.csv: b1m.csv without the label column.

  bench_ml.py sk ALGO CSV SPLIT RUNS PARAMS_JSON [PICKLE]
      train scikit-learn on exactly the train rows of SPLIT (mlfs's
      jobs/<job>/split: "row,set") of CSV, after a StandardScaler fitted on
      those rows (mlfs standardises the same way), RUNS times; time fit()
      only; evaluate on the test rows (k-means: on the train rows, which
      are all of them).  ALGO: logistic, ridge, mlp, kmeans.  PARAMS_JSON
      carries the matching settings (see bench_ml.sh).  Prints one JSON
      object: fit_seconds (list), metric, metric_name, n_train, n_test,
      n_iter, load_seconds, settings.  PICKLE: save (scaler, model).

  bench_ml.py batch CSV PICKLE RUNS
      end-to-end batch scoring: numpy.loadtxt of CSV (a header, then the
      feature columns) + scaler.transform + model.predict_proba, RUNS
      times; prints JSON: rows, seconds (list), and the predicted classes
      of the last run as a checksum-friendly count per class.

  bench_ml.py agree ANSWERS PICKLE CSV
      share of mlfs answers (first field of each line of ANSWERS) equal
      to scikit-learn's predict on CSV (features only), as JSON.
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


def gen(d):
    from sklearn.datasets import (load_digits, make_classification,
                                  make_regression)
    t0 = time.perf_counter()

    def names(k, p="x"):
        return ["%s%d" % (p, i) for i in range(k)]

    x, y = make_classification(n_samples=1_000_000, n_features=50,
                               n_informative=10, n_redundant=5,
                               n_classes=2, random_state=1)
    write_csv(f"{d}/b1m.csv", x, y, names(50), "%d")
    np.savetxt(f"{d}/b1m_features.csv", x, fmt="%.6g", delimiter=",",
               header=",".join(names(50)), comments="")
    x, y = make_classification(n_samples=200_000, n_features=50,
                               n_informative=20, n_redundant=10,
                               n_classes=10, random_state=2)
    write_csv(f"{d}/c10.csv", x, y, names(50), "%d")
    x, y = make_regression(n_samples=500_000, n_features=50,
                           n_informative=30, noise=10.0, random_state=3)
    write_csv(f"{d}/reg.csv", x, y, names(50), "%.6g")
    dg = load_digits()
    write_csv(f"{d}/digits.csv", dg.data, dg.target, names(64, "p"), "%d")
    x, y = make_classification(n_samples=200_000, n_features=100,
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


def sk(algo, csv, split, runs, params, pkl=None):
    from sklearn.preprocessing import StandardScaler
    t0 = time.perf_counter()
    x, y, _ = load(csv)
    tr, va, te = read_split(split, len(x))
    load_s = time.perf_counter() - t0
    scaler = StandardScaler().fit(x[tr])
    xtr = scaler.transform(x[tr])
    ytr = y[tr]
    xte = scaler.transform(x[te]) if len(te) else None
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

    fits, model = [], None
    for _ in range(runs):
        model = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            if algo == "kmeans":
                model.fit(xtr)
            else:
                model.fit(xtr, ytr)
            fits.append(time.perf_counter() - t)
    if algo in ("logistic", "mlp"):
        name = "accuracy"
        metric = float((model.predict(xte) == yte).mean())
    elif algo == "ridge":
        from sklearn.metrics import r2_score
        name = "r2"
        metric = float(r2_score(yte, model.predict(xte)))
    else:
        name = "inertia"
        metric = float(model.inertia_)
    n_iter = getattr(model, "n_iter_", None)
    if n_iter is not None:
        n_iter = int(np.max(n_iter))
    if pkl:
        with open(pkl, "wb") as f:
            pickle.dump((scaler, model), f)
    print(json.dumps({"fit_seconds": fits, "metric": metric,
                      "metric_name": name, "n_train": ntr,
                      "n_validation": len(va), "n_test": len(te),
                      "n_iter": n_iter, "load_seconds": load_s,
                      "settings": settings}))


def batch(csv, pkl, runs):
    with open(pkl, "rb") as f:
        scaler, model = pickle.load(f)
    secs, rows = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        x = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.float64,
                       ndmin=2)
        p = model.predict_proba(scaler.transform(x))
        secs.append(time.perf_counter() - t)
        rows = len(x)
        del x
    print(json.dumps({"rows": rows, "seconds": secs,
                      "classes": np.bincount(p.argmax(1)).tolist()}))


def agree(answers, pkl, csv):
    with open(pkl, "rb") as f:
        scaler, model = pickle.load(f)
    x = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    pred = model.predict(scaler.transform(x))
    with open(answers) as f:
        got = np.array([float(line.split(",", 1)[0]) for line in f])
    n = min(len(got), len(pred))
    print(json.dumps({"rows": n, "agree": float((got[:n] == pred[:n]).mean()),
                      "answers": len(got), "expected": len(pred)}))


def main():
    a = sys.argv[1:]
    if a[:1] == ["gen"] and len(a) == 2:
        gen(a[1])
    elif a[:1] == ["sk"] and len(a) in (6, 7):
        sk(a[1], a[2], a[3], int(a[4]), json.loads(a[5]),
           a[6] if len(a) == 7 else None)
    elif a[:1] == ["batch"] and len(a) == 4:
        batch(a[1], a[2], int(a[3]))
    elif a[:1] == ["agree"] and len(a) == 4:
        agree(a[1], a[2], a[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
