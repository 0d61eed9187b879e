#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_train.py DIR WHICH [RUNS] - write the synthetic data set WHICH to
DIR/WHICH.bin (the format train_bench reads) and time scikit-learn's fit
on it, RUNS times (default 3) in float32, as train_bench feeds the
plugin, and RUNS times in float64, alternating; print for each the
median fit time, the test accuracy, the dtype the estimator computed in
and the BLAS threads.  The timed span is fit() with its input checks,
from the arrays in memory to the fitted model, as train_bench times the
plugin's init and fit.

  logistic  1,000,000 x 50 train (+100,000 test), two classes from a
            noisy linear score; LogisticRegression(solver="lbfgs")
  mlp       200,000 x 100 train (+20,000 test), ten classes from
            make_classification, standardised;
            MLPClassifier(hidden_layer_sizes=(64,), max_iter=50,
            early_stopping=False)
"""
import os
import sys
import time
import warnings

import numpy as np

# the same median and thread report as bench_ml.py's
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "ml"))
from bench_ml import blas_threads, median  # noqa: E402


def write(path, xtr, ytr, xte, yte, k):
    with open(path, "wb") as f:
        np.array([len(xtr), len(xte), xtr.shape[1], k],
                 dtype="<u8").tofile(f)
        for a in (xtr, ytr, xte, yte):
            np.ascontiguousarray(a, dtype="<f4").tofile(f)


def main():
    out, which = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    rng = np.random.default_rng(0)
    if which == "logistic":
        from sklearn.linear_model import LogisticRegression
        n, nt, d = 1_000_000, 100_000, 50
        x = rng.standard_normal((n + nt, d), dtype=np.float32)
        w = rng.standard_normal(d) / np.sqrt(d) * 3
        z = x @ w + 0.5 + rng.standard_normal(n + nt)
        y = (z > 0).astype(np.float32)
        k = 2

        def make():
            return LogisticRegression(solver="lbfgs")
    else:
        from sklearn.datasets import make_classification
        from sklearn.neural_network import MLPClassifier
        n, nt, d = 200_000, 20_000, 100
        x, y = make_classification(n_samples=n + nt, n_features=d,
                                   n_informative=40, n_redundant=20,
                                   n_classes=10, n_clusters_per_class=2,
                                   class_sep=1.5, random_state=0)
        x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
        y = y.astype(np.float32)
        k = 10

        def make():
            return MLPClassifier(hidden_layer_sizes=(64,), max_iter=50,
                                 early_stopping=False, random_state=0)
    xtr, ytr, xte, yte = x[:n], y[:n], x[n:], y[n:]
    write(f"{out}/{which}.bin", xtr, ytr, xte, yte, k)
    data = {"float32": (xtr.astype(np.float32), xte.astype(np.float32)),
            "float64": (xtr.astype(np.float64), xte.astype(np.float64))}
    del x, xtr, xte
    fits = {d: [] for d in data}
    model = {}
    for _ in range(runs):
        for d, (a, _) in data.items():
            m = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                m.fit(a, ytr)
                fits[d].append(time.perf_counter() - t0)
            model[d] = m
    for d, (_, b) in data.items():
        m = model[d]
        acc = (m.predict(b) == yte).mean()
        iters = int(np.max(m.n_iter_))
        w = m.coef_ if hasattr(m, "coef_") else m.coefs_[0]
        print(f"sklearn {which} {d}: fit {median(fits[d]):.3f} s (median of "
              f"{runs}: {', '.join('%.3f' % v for v in fits[d])}), "
              f"{iters} iterations, test accuracy {acc:.4f}, computed in "
              f"{w.dtype}; {blas_threads()}")


if __name__ == "__main__":
    main()
