#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_features.py - the pandas side of bench_features.sh (run it with
Debian's /usr/bin/python3 and python3-pandas).

The feature set both sides compute (FEATURES, and bench_features.sh's
spec): entity customer_id, timestamp ts, and
  txns_1h         count of events in (t - 1h, t]
  amount_sum_7d   sum of amount in (t - 7d, t]    (0 when none)
  amount_mean_1d  mean of amount in (t - 1d, t]   (missing when none)
  country_last    the last country seen at or before t

  bench_features.py gen EVENTS ROWS N NROWS SEED
      EVENTS: N events "customer_id,ts,amount,country" for 100,000
      entities over 2024, in time order as an event log is; ts in integer
      seconds since the epoch (what pandas reads fastest: an int64 column,
      one vectorised to_datetime); amount in cents, 0.5 % missing;
      country one of 30 codes (never "na", a missing token on both
      sides), skewed, 0.5 % missing; 1 % of the events repeat an earlier
      event's (entity, time) with other values, so that offline.csv's
      "one row per distinct (entity, event time), counting every event at
      that time" is exercised.  ROWS: NROWS join rows "customer_id,ts"
      (no header), random entities at random seconds of the year.
      Prints JSON: events, distinct (entity, time), entities, bytes.

  bench_features.py sync EVENTS OUT
      the peer of mlfs's sync, timed from read_csv to the end of to_csv:
      read_csv, a stable sort by (entity, ts) (np.lexsort),
      groupby(entity).rolling with time windows (closed right: (t - w,
      t], as mlfs) for the count, sum and mean, groupby ffill for the
      last country, then the last row per (entity, ts), as offline.csv
      has one row per distinct (entity, time) counting every event at it,
      and to_csv.  Prints JSON phase
      seconds.

  bench_features.py check MLFS_OFFLINE PANDAS_OUT
      every value of mlfs's offline.csv against pandas' (numbers within
      1e-9 relative, categories equal, missing only where missing); rows
      matched on (entity, ts).  Prints JSON: rows, mismatches per feature
      and a few examples; exits 1 on a mismatch.

  bench_features.py join OFFLINE ROWS OUT
      the peer of features/<fs>/join: pandas.merge_asof (by entity,
      backward, exact matches allowed) of ROWS on the materialised
      features OFFLINE (pandas' own output of `sync`), timed from reading
      both to the end of to_csv, answers in the order of ROWS.  Prints
      JSON phase seconds.

  bench_features.py checkjoin MLFS_OUT PANDAS_OUT ROWS EVENTS
      mlfs's join answers against (a) merge_asof's: country_last must be
      identical; the windowed features differ wherever a window ran out
      between the last event and the row's time (merge_asof carries the
      event's value, mlfs is exact at the instant): counted, as a note;
      and (b) an exact reference computed here from EVENTS with integer
      cents and prefix sums (numpy searchsorted), where every feature must
      match.  Prints JSON; exits 1 on a mismatch of country_last or of the
      exact reference.

  bench_features.py report RESDIR
      the table of medians and ratios from bench_features.sh's results.
"""
import json
import os
import sys
import time

import numpy as np
import pandas as pd

ENTITIES = 100_000
T0 = 1704067200          # 2024-01-01T00:00:00Z
T1 = 1735689600          # 2025-01-01T00:00:00Z
COUNTRIES = ["us", "gb", "de", "fr", "es", "it", "nl", "be", "pl", "se",
             "no", "dk", "fi", "ie", "pt", "at", "ch", "cz", "gr", "hu",
             "ro", "bg", "hr", "sk", "si", "lt", "lv", "ee", "ca", "mx"]
KEY = ["customer_id", "ts"]
NUM = ["txns_1h", "amount_sum_7d", "amount_mean_1d"]
CAT = ["country_last"]
FEATURES = NUM + CAT
REL = 1e-9


def now():
    return time.perf_counter()


# ---------------------------------------------------------------- gen
def gen(events, rows, n, nrows, seed):
    rng = np.random.default_rng(seed)
    ndup = n // 100
    nb = n - ndup
    ent = rng.integers(0, ENTITIES, nb)
    ts = rng.integers(T0, T1, nb)
    di = rng.integers(0, nb, ndup)
    ent = np.concatenate([ent, ent[di]])
    ts = np.concatenate([ts, ts[di]])
    cents = np.maximum(1, np.rint(np.exp(rng.normal(3.5, 1.2, n)) * 100))
    amount = cents / 100
    amount[rng.random(n) < 0.005] = np.nan
    w = 1 / np.arange(1, len(COUNTRIES) + 1) ** 1.1
    cidx = rng.choice(len(COUNTRIES), n, p=w / w.sum())
    country = np.array(COUNTRIES, dtype=object)[cidx]
    country[rng.random(n) < 0.005] = None
    # an event log is in time order; the repeats land after their original
    order = np.argsort(ts, kind="stable")
    df = pd.DataFrame({"customer_id": ent[order], "ts": ts[order],
                       "amount": amount[order], "country": country[order]})
    df.to_csv(events, index=False)
    q = pd.DataFrame({"customer_id": rng.integers(0, ENTITIES, nrows),
                      "ts": rng.integers(T0, T1, nrows)})
    q.to_csv(rows, index=False, header=False)
    distinct = len(df.drop_duplicates(KEY))
    print(json.dumps({"events": n, "distinct_entity_times": distinct,
                      "entities": int(df.customer_id.nunique()),
                      "bytes": os.path.getsize(events),
                      "join_rows": nrows}))


# ---------------------------------------------------------------- sync
def sync(events, out):
    ph = {}
    t = now()
    df = pd.read_csv(events)
    ph["read"] = now() - t
    t1 = now()
    # np.lexsort is stable, and a third faster than sort_values(KEY,
    # kind="stable") here (24 s against 17 s at 10M events)
    order = np.lexsort((df["ts"].to_numpy(), df["customer_id"].to_numpy()))
    df = df.take(order).reset_index(drop=True)
    df["t"] = pd.to_datetime(df["ts"], unit="s")
    ph["sort"] = now() - t1
    t1 = now()
    # groupby(sort=True) on a frame sorted by entity: the rolling results
    # come back in the frame's own row order.  The time as the index and
    # the column picked before rolling: pandas 1.5 checks each group's
    # times are monotonic in Python, and rolling(on=)[col] checks twice
    g = df.set_index("t").groupby("customer_id", sort=True)
    res = pd.DataFrame({"customer_id": df["customer_id"], "ts": df["ts"]})
    res["txns_1h"] = g["ts"].rolling("1h").count() \
        .to_numpy().astype(np.int64)
    # sum of none is 0 (mlfs, featcalc.h); pandas gives NaN when a window
    # holds events but no amount
    res["amount_sum_7d"] = np.nan_to_num(
        g["amount"].rolling("7d").sum().to_numpy(), nan=0.0)
    res["amount_mean_1d"] = g["amount"].rolling("1d").mean().to_numpy()
    res["country_last"] = g["country"].ffill().to_numpy()
    ph["features"] = now() - t1
    t1 = now()
    # sorted: the last row of an (entity, ts) is the one whose next row
    # has another key (duplicated(KEY, keep="last") gives the same rows
    # in 7 s at 10M events, this in 0.02 s)
    k = res[KEY]
    res = res[(k != k.shift(-1)).any(axis=1).to_numpy()]
    ph["dedup"] = now() - t1
    t1 = now()
    res.to_csv(out, index=False)
    ph["write"] = now() - t1
    ph["total"] = now() - t
    ph["rows"] = len(res)
    print(json.dumps(ph))


# ---------------------------------------------------------------- checks
def num_mismatch(a, b):
    """Boolean mask: a and b differ (missing only where missing, else
    within REL relative)."""
    na, nb = np.isnan(a), np.isnan(b)
    both = ~na & ~nb
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore"):
        far = np.abs(a - b) > REL * scale
    return (na != nb) | (both & far)


def cat_mismatch(a, b):
    a = pd.Series(a, dtype=object).fillna("").to_numpy()
    b = pd.Series(b, dtype=object).fillna("").to_numpy()
    return a != b


def read_answers(path):
    return pd.read_csv(path, dtype={"country_last": object},
                       keep_default_na=False,
                       na_values={f: [""] for f in NUM})


def check(mlfs_path, pandas_path):
    m = read_answers(mlfs_path)
    p = read_answers(pandas_path)
    out = {"rows_mlfs": len(m), "rows_pandas": len(p), "mismatches": {},
           "examples": []}
    if list(m.columns) != KEY + FEATURES:
        out["error"] = "mlfs's header: %s" % list(m.columns)
        print(json.dumps(out))
        return 1
    # mlfs orders entities bytewise ("10" before "9"), pandas numerically
    m = m.sort_values(KEY, ignore_index=True)
    p = p.sort_values(KEY, ignore_index=True)
    if len(m) != len(p) or not (m[KEY].to_numpy() == p[KEY].to_numpy()).all():
        j = m.merge(p, on=KEY, how="outer", indicator=True)
        out["only_mlfs"] = int((j._merge == "left_only").sum())
        out["only_pandas"] = int((j._merge == "right_only").sum())
        out["examples"] = j[j._merge != "both"].head(5) \
            .astype(str).to_dict("records")
        out["error"] = "the (entity, ts) rows differ"
        print(json.dumps(out))
        return 1
    bad_any = np.zeros(len(m), dtype=bool)
    for f in FEATURES:
        if f in NUM:
            bad = num_mismatch(m[f].to_numpy(float), p[f].to_numpy(float))
        else:
            bad = cat_mismatch(m[f], p[f])
        out["mismatches"][f] = int(bad.sum())
        bad_any |= bad
    out["total_mismatches"] = int(bad_any.sum())
    if bad_any.any():
        i = np.flatnonzero(bad_any)[:8]
        out["examples"] = [{"mlfs": m.iloc[k].astype(str).to_dict(),
                            "pandas": p.iloc[k].astype(str).to_dict()}
                           for k in i]
    print(json.dumps(out))
    return 1 if bad_any.any() else 0


# ---------------------------------------------------------------- join
def join(offline, rows, out):
    ph = {}
    t = now()
    f = pd.read_csv(offline)
    q = pd.read_csv(rows, header=None, names=KEY)
    ph["read"] = now() - t
    t1 = now()
    # merge_asof wants both sides sorted on the time; keep the rows' order
    # to answer in it, as the join stream does
    q["row"] = np.arange(len(q))
    q = q.sort_values("ts", kind="stable")
    f = f.sort_values("ts", kind="stable")
    ph["sort"] = now() - t1
    t1 = now()
    j = pd.merge_asof(q, f, on="ts", by="customer_id", direction="backward",
                      allow_exact_matches=True)
    j = j.sort_values("row").drop(columns="row")
    ph["merge"] = now() - t1
    t1 = now()
    j.to_csv(out, index=False)
    ph["write"] = now() - t1
    ph["total"] = now() - t
    ph["rows"] = len(j)
    print(json.dumps(ph))


def exact(events, q):
    """Every feature of rows q (customer_id, ts) as of ts, from the events
    with integer cents and prefix sums: exact sums, counts and means."""
    ev = pd.read_csv(events, dtype={"country": object})
    key = (ev.customer_id.to_numpy(np.int64) << 31) | ev.ts.to_numpy(np.int64)
    o = np.argsort(key, kind="stable")
    key = key[o]
    amt = ev.amount.to_numpy()[o]
    has = ~np.isnan(amt)
    cents = np.where(has, np.rint(np.nan_to_num(amt) * 100), 0) \
        .astype(np.int64)
    cs = np.concatenate([[0], np.cumsum(cents)])
    nn = np.concatenate([[0], np.cumsum(has)])
    ent = ev.customer_id.to_numpy()[o]
    country = pd.Series(ev.country.to_numpy()[o]).groupby(ent).ffill() \
        .to_numpy()
    qe = q.customer_id.to_numpy(np.int64)
    qt = q.ts.to_numpy(np.int64)
    first = np.searchsorted(key, qe << 31, "left")
    hi = np.searchsorted(key, (qe << 31) | qt, "right")
    none = hi == first
    r = {}

    def lo(w):
        return np.searchsorted(key, (qe << 31) | np.maximum(qt - w, 0),
                               "right")
    l1h, l7d, l1d = lo(3600), lo(7 * 86400), lo(86400)
    r["txns_1h"] = np.where(none, np.nan, hi - l1h)
    r["amount_sum_7d"] = np.where(none, np.nan, (cs[hi] - cs[l7d]) / 100)
    n1d = nn[hi] - nn[l1d]
    with np.errstate(invalid="ignore", divide="ignore"):
        r["amount_mean_1d"] = np.where(none | (n1d == 0), np.nan,
                                       (cs[hi] - cs[l1d]) / 100 / n1d)
    c = country[np.maximum(hi - 1, 0)]
    c[none] = None
    r["country_last"] = c
    return r


def checkjoin(mlfs_out, pandas_out, rows, events):
    q = pd.read_csv(rows, header=None, names=KEY)
    with open(mlfs_out) as fp:
        errors = sum(1 for ln in fp if ln.startswith("error:"))
    m = read_answers(mlfs_out)
    p = read_answers(pandas_out)
    out = {"rows": len(q), "answers_mlfs": len(m), "answers_pandas": len(p),
           "error_lines": errors}
    if (len(m) != len(q) or errors or
            not (m[KEY].to_numpy() == q[KEY].to_numpy()).all()):
        out["error"] = "mlfs's answers are not one per row, in order"
        print(json.dumps(out))
        return 1
    vs_asof = {}
    for f in FEATURES:
        if f in NUM:
            bad = num_mismatch(m[f].to_numpy(float), p[f].to_numpy(float))
        else:
            bad = cat_mismatch(m[f], p[f])
        vs_asof[f] = int(bad.sum())
    out["differ_from_merge_asof"] = vs_asof
    # where they differ, is it a window that ran out after the event?
    ref = exact(events, q)
    vs_ref = {}
    ex = []
    for f in FEATURES:
        if f in NUM:
            bad = num_mismatch(m[f].to_numpy(float), ref[f])
        else:
            bad = cat_mismatch(m[f], ref[f])
        vs_ref[f] = int(bad.sum())
        for k in np.flatnonzero(bad)[:3]:
            ex.append({"feature": f, "row": q.iloc[k].astype(str).to_dict(),
                       "mlfs": str(m[f].iloc[k]), "exact": str(ref[f][k])})
    out["differ_from_exact"] = vs_ref
    out["examples"] = ex
    # merge_asof against the exact values: its windowed differences are
    # all of this kind when it matches the exact value at the event
    asof_vs_ref = {f: int(num_mismatch(p[f].to_numpy(float), ref[f]).sum())
                   for f in NUM}
    out["merge_asof_differs_from_exact"] = asof_vs_ref
    out["rows_without_history"] = int(m["country_last"].isna().sum() +
                                      (m["country_last"] == "").sum())
    print(json.dumps(out))
    return 1 if vs_asof["country_last"] or any(vs_ref.values()) else 0


# ---------------------------------------------------------------- report
def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def load_jsonl(path):
    with open(path) as fp:
        return [json.loads(ln) for ln in fp if ln.strip()]


def report(res):
    def rd(name):
        with open(os.path.join(res, name)) as fp:
            return fp.read().strip()
    gen_info = json.loads(rd("gen.json"))
    ms = load_jsonl(os.path.join(res, "mlfs-sync.jsonl"))
    ps = load_jsonl(os.path.join(res, "pandas-sync.jsonl"))
    mj = load_jsonl(os.path.join(res, "mlfs-join.jsonl"))
    pj = load_jsonl(os.path.join(res, "pandas-join.jsonl"))
    chk = json.loads(rd("check.json"))
    cj = json.loads(rd("checkjoin.json"))
    print("## mlfs feature sets against pandas (bench_features.sh)\n")
    with open(os.path.join(res, "machine.tsv")) as fp:
        for ln in fp:
            k, v = ln.rstrip("\n").split("\t", 1)
            print("- %s: %s" % (k, v))
    print("- events: %d (%d distinct (entity, time)), %d entities, "
          "%.0f MB CSV; join rows: %d\n" % (
              gen_info["events"], gen_info["distinct_entity_times"],
              gen_info["entities"], gen_info["bytes"] / 1e6,
              gen_info["join_rows"]))
    print("| measurement | mlfs s | pandas s | pandas/mlfs |")
    print("|---|---|---|---|")
    msync = median([r["total"] for r in ms])
    psync = median([r["total"] for r in ps])
    print("| offline sync (median of %d / %d) | %.2f | %.2f | %.2fx |" % (
        len(ms), len(ps), msync, psync, psync / msync))
    mjoin = median([r["total"] for r in mj])
    pjoin = median([r["total"] for r in pj])
    print("| point-in-time join, %d rows (median of %d / %d) | %.2f | "
          "%.2f | %.2fx |\n" % (gen_info["join_rows"], len(mj), len(pj),
                                mjoin, pjoin, pjoin / mjoin))
    print("Phases (medians, seconds):")
    print("- mlfs sync: cp %.2f, spec + ctl %.3f, job to its end %.2f "
          "(job log: events read and ordered %.2f, offline.csv done %.2f)" % (
              median([r["cp"] for r in ms]),
              median([r["spec_ctl"] for r in ms]),
              median([r["wait"] for r in ms]),
              median([r.get("job_hist", float("nan")) for r in ms]),
              median([r.get("job_offline", float("nan")) for r in ms])))
    print("- pandas sync: " + ", ".join(
        "%s %.2f" % (k, median([r[k] for r in ps]))
        for k in ("read", "sort", "features", "dedup", "write")))
    print("- mlfs join: write rows %.2f, read answers %.2f" % (
        median([r["write"] for r in mj]), median([r["read"] for r in mj])))
    print("- pandas join: " + ", ".join(
        "%s %.2f" % (k, median([r[k] for r in pj]))
        for k in ("read", "sort", "merge", "write")))
    print("\nAgreement:")
    print("- offline.csv: %d rows (pandas %d); mismatches %d %s" % (
        chk["rows_mlfs"], chk["rows_pandas"], chk.get("total_mismatches", -1),
        json.dumps(chk["mismatches"])))
    print("- join vs merge_asof: country_last differs in %d rows (must be "
          "0); windowed features differ %s (expected: merge_asof carries "
          "the last event's window, mlfs is exact at the row's time)" % (
              cj["differ_from_merge_asof"]["country_last"],
              json.dumps({f: cj["differ_from_merge_asof"][f] for f in NUM})))
    print("- join vs the exact reference (integer cents, prefix sums): "
          "%s; merge_asof vs the same: %s" % (
              json.dumps(cj["differ_from_exact"]),
              json.dumps(cj["merge_asof_differs_from_exact"])))
    notes = os.path.join(res, "notes.txt")
    if os.path.exists(notes):
        print("\nNotes:")
        with open(notes) as fp:
            for ln in fp:
                print("- " + ln.rstrip("\n"))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "gen" and len(argv) == 7:
        gen(argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]))
    elif cmd == "sync" and len(argv) == 4:
        sync(argv[2], argv[3])
    elif cmd == "check" and len(argv) == 4:
        return check(argv[2], argv[3])
    elif cmd == "join" and len(argv) == 5:
        join(argv[2], argv[3], argv[4])
    elif cmd == "checkjoin" and len(argv) == 6:
        return checkjoin(argv[2], argv[3], argv[4], argv[5])
    elif cmd == "report" and len(argv) == 3:
        report(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
