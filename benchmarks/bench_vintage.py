"""Backtest evidence for cohort factors and calibration weights (issue 14; docs/methodology.md, 3a).

Portfolio and segment MAE (DEL points, mean over h = 1..12, the last 12 origins) of the chain as specified, with
k weighted by EAD or loans, with cohort factors, against chain-ladder and the last value carried forward, on a
simulated book with vintage effects ("sim"), the bundled sample ("sample") and a book of uneven cohort sizes
("uneven"). Usage: python benchmarks/bench_vintage.py [sim] [sample] [uneven]   (about 30 s on 2 shared cores)
"""
import sys
import time

import numpy as np
import pandas as pd

from pyxl_del import Config
from pyxl_del.backtest.rolling import backtest
from pyxl_del.datasets.sample import (
    _scale_roll_forward,
    load_sample_panel,
    realistic_matrices,
    simulate_panel,
)

VARIANTS = {
    "spec (k plain)": {},
    "k ead": {"weights": "ead"},
    "k loans": {"weights": "loans"},
    "cohort factor": {"cohort_factor": "credibility"},
    "cohort factor + k ead": {"cohort_factor": "credibility", "weights": "ead"},
    "cohort factor + k loans": {"cohort_factor": "credibility", "weights": "loans"},
    "k min 30 loans": {"min_cohort_loans": 30},
}


def vintage_book(seed=7, n_cohorts=36, sd=0.25):
    cfg = Config()
    segments = ("CASH LOAN", "CD")
    cohorts = [f"{2023 + (c // 12)}-{c % 12 + 1:02d}" for c in range(n_cohorts)]
    rng = np.random.default_rng(seed)
    f = np.exp(rng.normal(0.0, sd, (n_cohorts, len(segments))))
    p = _scale_roll_forward(realistic_matrices(cfg, segments)[None], f[:, :, None], cfg)
    return simulate_panel(p, cohorts=cohorts, as_of=cohorts[-1], loans_per_cohort={"CASH LOAN": 800, "CD": 120},
                          segments=segments, seed=seed, config=cfg, ead0_mean={"CASH LOAN": 1500.0, "CD": 800.0})


def uneven_book(seed=9, n_cohorts=36, sd=0.25):
    """One segment; every third cohort has 2 loans, the others 500 (a real book's thin months)."""
    cfg = Config()
    cohorts = [f"{2023 + (c // 12)}-{c % 12 + 1:02d}" for c in range(n_cohorts)]
    f = np.exp(np.random.default_rng(seed).normal(0.0, sd, n_cohorts))
    p = _scale_roll_forward(realistic_matrices(cfg, ("CASH LOAN",))[None], f[:, None, None], cfg)
    thin = np.arange(n_cohorts) % 3 == 0
    parts = [simulate_panel(p[mask], cohorts=[c for c, m in zip(cohorts, mask) if m], as_of=cohorts[-1],
                            loans_per_cohort=n, segments=("CASH LOAN",), seed=seed + n, config=cfg, id_start=start,
                            ead0_mean=1500.0)
             for mask, n, start in ((thin, 2, 0), (~thin, 500, 100_000))]
    return pd.concat(parts, ignore_index=True)


def score(result, segment="Portfolio"):
    t = result.by_horizon
    t = t[(t["segment"] == segment)]
    return t.groupby(["model", "del_type"])["mae"].mean().unstack("del_type") * 100  # DEL points


def evaluate(df, name, origins=12):
    rows = []
    started = time.perf_counter()
    base = backtest(df, Config(), origins=origins, horizon=12, models=("chain_ladder", "carry_forward",
                                                                       "markov_uncalibrated"))
    segments = [s for s in base.segments]
    for seg in segments:
        s = score(base, seg)
        for model in s.index:
            rows.append({"panel": name, "segment": seg, "model": model, **s.loc[model].to_dict()})
    for label, cal in VARIANTS.items():
        r = backtest(df, Config().with_overrides(calibration=cal), origins=origins, horizon=12, models=("markov",))
        for seg in segments:
            s = score(r, seg)
            rows.append({"panel": name, "segment": seg, "model": label, **s.loc["markov"].to_dict()})
    print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    which = sys.argv[1:] or ["sim", "sample", "uneven"]
    out = []
    if "sim" in which:
        df = vintage_book()
        print(f"sim rows {len(df):,}", file=sys.stderr)
        out.append(evaluate(df, "simulated vintage book"))
    if "uneven" in which:
        out.append(evaluate(uneven_book(), "uneven cohort sizes"))
    if "sample" in which:
        out.append(evaluate(load_sample_panel(), "bundled sample"))
    table = pd.concat(out, ignore_index=True)
    pd.set_option("display.width", 200)
    print(table.round(3).to_string())
