"""Decision throughput and latency: a million applications in one batch, and one application at a time.

    python benchmarks/bench_decide.py [--n 1000000] [--repeat 3]

Prints evaluations per second of `DecisionEngine.evaluate` (the arrays every caller shares) and of the whole batch
path `decide(frame, policy, twin)` (input checks, segment lookup, reason texts, the output table), and the latency
of `decide(Application, policy, twin)` for a single application. The twin is fitted on the scored sample; the
policy is the optimiser's recommendation (cut-offs), and a fifth of the applications ask for their own APR.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from pyxl_del.datasets.sample import generate_sample
from pyxl_del.decision.decide import Application, decide, engine_for
from pyxl_del.decision.optimise import recommend_policy
from pyxl_del.decision.twin import fit_twin
from pyxl_del.engine.config import Config


def applications(twin, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"segment": pd.array(rng.choice(list(twin.segments), n), dtype="str"),
                          "score": rng.normal(600, 50, n).round(), "amount": rng.lognormal(9.5, 0.4, n).round(2)})
    frame["apr"] = np.where(rng.random(n) < 0.2, rng.choice(np.arange(0.10, 0.50, 0.005), n), np.nan)
    return frame


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    twin = fit_twin(generate_sample(score=True), Config())
    policy = recommend_policy(twin)[0]
    engine = engine_for(policy, twin)
    frame = applications(twin, args.n)
    segment = engine.segment_codes(frame["segment"])
    score, amount, apr = (frame[c].to_numpy() for c in ("score", "amount", "apr"))

    core = best(lambda: engine.evaluate(segment, score, amount, apr), args.repeat)
    whole = best(lambda: decide(frame, policy, twin), args.repeat)
    out = decide(frame, policy, twin)
    print(f"{args.n:,} applications, policy {policy.version}: "
          f"{(out['decision'] == 'APPROVE').mean():.1%} approved; reasons: "
          + ", ".join(f"{k} {v:,}" for k, v in out["reason_code"].value_counts().items() if v))
    print(f"evaluate (arrays):           {core * 1000:7.1f} ms  {args.n / core:>12,.0f} evaluations/s")
    print(f"decide(frame) (whole batch): {whole * 1000:7.1f} ms  {args.n / whole:>12,.0f} evaluations/s")

    app = Application(segment="CASH LOAN", score=640, amount=10_000)
    decide(app, policy, twin)
    single = []
    for _ in range(2_000):
        started = time.perf_counter()
        decide(app, policy, twin)
        single.append(time.perf_counter() - started)
    single_ms = np.array(single) * 1000
    print(f"decide(Application) single:  median {statistics.median(single_ms):.3f} ms, "
          f"p99 {np.percentile(single_ms, 99):.3f} ms")


if __name__ == "__main__":
    main()
