# SPDX-License-Identifier: MIT
"""bench_drift.py - the numpy + scipy side of bench_monitor.sh's drift
measurement, on the data drift_bench wrote (DUMPDIR).

    bench_drift.py DUMPDIR NUM CAT REF LIVE RUNS

Times, RUNS times after one warm-up run (median, min, max in ms):
  scipy   the peer: scipy.stats.ks_2samp(ref, live) of every numeric
          feature, as one writes it (method "auto": the exact p-value up
          to 10,000 rows a side, else the asymptotic one), and for every
          categorical one its 2 x K table (numpy: the reference's
          categories and "other") and
          scipy.stats.chi2_contingency(correction=False)
  asymp   the same with ks_2samp(..., method="asymp") (context)
  full    the peer and the PSI of every feature (numpy: deciles by
          numpy.quantile, numpy.searchsorted, numpy.bincount): all that
          drift.c computes (context)
Then checks drift.c's figures (DUMPDIR/stats.tsv): psi, ks, chi2,
chi2_p against these, and ks_p against the limiting distribution
drift.c uses, kstwobign.sf(sqrt(mn/(m+n)) D) (ks_2samp's own p-values
are the exact or finite-n ones): the largest differences.

Prints "name median min max" lines, then "agree max_abs_diff_psi ks ks_p
chi2 chi2_p dof_mismatches".
"""
import os
import statistics
import sys
import time

import numpy as np
from scipy.stats import chi2_contingency, ks_2samp, kstwobign

FLOOR = 1e-4


def psi(rb, lb):
    e = np.maximum(rb / rb.sum(), FLOOR)
    a = np.maximum(lb / lb.sum(), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric(ref, live, with_psi, method):
    r = ks_2samp(ref, live, method=method)
    out = {"ks": float(r.statistic), "ks_p": float(r.pvalue)}
    if with_psi:
        cuts = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
        nb = len(cuts) + 1
        rb = np.bincount(np.searchsorted(cuts, ref, side="left"),
                         minlength=nb)
        lb = np.bincount(np.searchsorted(cuts, live, side="left"),
                         minlength=nb)
        out["psi"] = psi(rb, lb)
    return out


def categorical(ref, live, with_psi):
    cats, rcount = np.unique(ref, return_counts=True)
    at = np.searchsorted(cats, live)
    at[at == len(cats)] = 0
    known = cats[at] == live
    lcount = np.bincount(at[known], minlength=len(cats))
    rb = np.append(rcount, 0).astype(float)
    lb = np.append(lcount, np.count_nonzero(~known)).astype(float)
    table = np.vstack([rb, lb])
    table = table[:, table.sum(axis=0) > 0]
    chi2, p, dof, _ = chi2_contingency(table, correction=False)
    out = {"chi2": float(chi2), "chi2_p": float(p), "dof": int(dof)}
    if with_psi:
        out["psi"] = psi(rb, lb)
    return out


def run(refn, liven, refc, livec, with_psi, method="auto"):
    out = [numeric(refn[j], liven[j], with_psi, method)
           for j in range(len(refn))]
    out += [categorical(refc[j], livec[j], with_psi)
            for j in range(len(refc))]
    return out


def timed(f, runs):
    f()  # warm-up
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t), min(t), max(t)


def main():
    d = sys.argv[1]
    num, cat, nref, nlive, runs = map(int, sys.argv[2:7])
    refn = np.fromfile(os.path.join(d, "ref.f64")).reshape(num, nref)
    liven = np.fromfile(os.path.join(d, "live.f64")).reshape(num, nlive)
    refc = np.fromfile(os.path.join(d, "refcat.u64"),
                       dtype=np.uint64).reshape(cat, nref)
    livec = np.fromfile(os.path.join(d, "livecat.u64"),
                        dtype=np.uint64).reshape(cat, nlive)

    print("scipy %.3f %.3f %.3f" %
          timed(lambda: run(refn, liven, refc, livec, False), runs))
    print("asymp %.3f %.3f %.3f" %
          timed(lambda: run(refn, liven, refc, livec, False, "asymp"), runs))
    print("full %.3f %.3f %.3f" %
          timed(lambda: run(refn, liven, refc, livec, True), runs))

    ours = run(refn, liven, refc, livec, True)
    for o in ours[:num]:
        o["ks_p"] = float(kstwobign.sf(
            np.sqrt(nref * nlive / (nref + nlive)) * o["ks"]))
    diff = {k: 0.0 for k in ("psi", "ks", "ks_p", "chi2", "chi2_p")}
    dof_bad = 0
    with open(os.path.join(d, "stats.tsv")) as fp:
        for o, line in zip(ours, fp):
            f = line.rstrip("\n").split("\t")
            c = {"psi": float(f[1]), "ks": float(f[2]), "ks_p": float(f[3]),
                 "chi2": float(f[4]), "dof": int(f[5]),
                 "chi2_p": float(f[6])}
            for k in diff:
                if k in o:
                    diff[k] = max(diff[k], abs(o[k] - c[k]))
            if "dof" in o and o["dof"] != c["dof"]:
                dof_bad += 1
    print("agree %.3g %.3g %.3g %.3g %.3g %d" %
          (diff["psi"], diff["ks"], diff["ks_p"], diff["chi2"],
           diff["chi2_p"], dof_bad))


if __name__ == "__main__":
    main()
