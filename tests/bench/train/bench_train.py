#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_train.py DIR WHICH - write the synthetic data set WHICH to
DIR/WHICH.bin (the format train_bench reads) and time scikit-learn's fit
on it, printing the fit time and the test accuracy.

  logistic  1,000,000 x 50 train (+100,000 test), two classes from a
            noisy linear score; LogisticRegression(solver="lbfgs")
  mlp       200,000 x 100 train (+20,000 test), ten classes from
            make_classification, standardised;
            MLPClassifier(hidden_layer_sizes=(64,), max_iter=50,
            early_stopping=False)
"""
import sys
import time
import warnings

import numpy as np


def write(path, xtr, ytr, xte, yte, k):
    with open(path, "wb") as f:
        np.array([len(xtr), len(xte), xtr.shape[1], k],
                 dtype="<u8").tofile(f)
        for a in (xtr, ytr, xte, yte):
            np.ascontiguousarray(a, dtype="<f4").tofile(f)


def main():
    out, which = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    if which == "logistic":
        from sklearn.linear_model import LogisticRegression
        n, nt, d = 1_000_000, 100_000, 50
        x = rng.standard_normal((n + nt, d), dtype=np.float32)
        w = rng.standard_normal(d) / np.sqrt(d) * 3
        z = x @ w + 0.5 + rng.standard_normal(n + nt)
        y = (z > 0).astype(np.float32)
        k = 2
        model = LogisticRegression(solver="lbfgs")
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
        model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50,
                              early_stopping=False, random_state=0)
    xtr, ytr, xte, yte = x[:n], y[:n], x[n:], y[n:]
    write(f"{out}/{which}.bin", xtr, ytr, xte, yte, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(xtr, ytr)
        t1 = time.perf_counter()
    acc = (model.predict(xte) == yte).mean()
    iters = int(np.max(model.n_iter_))
    print(f"sklearn {which} fit {t1 - t0:.3f} s, {iters} iterations, "
          f"test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
