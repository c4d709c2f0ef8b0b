"""Risk analytics benchmark (issue #5): Monte Carlo credit VaR and the other views on the bundled sample.

Prints timings and figures. Target: 10,000 Monte Carlo paths over 36 months for 3 segments in under 2 s.
Also prints the closed-form check (simulated VaR of a single-period, 100k-loan homogeneous pool against the
Vasicek large-pool quantile) and the sample's EL, VaR and stress figures.
Usage: python benchmarks/bench_risk.py [--paths 10000] [--months 36] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pyxl_del
from pyxl_del.datasets.sample import SAMPLE_PANEL_PATH
from pyxl_del.risk.analysis import RiskAnalysis
from pyxl_del.risk.capital import vasicek_quantile
from pyxl_del.risk.projection import project
from pyxl_del.risk.var import segment_chain, simulate_credit_loss


def timed(fn, repeat: int):
    """(best wall seconds, CPU seconds of that run, result): CPU time shows the cost on a busy machine."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - started
        if wall < best:
            best, cpu = wall, time.process_time() - started_cpu
    return best, cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    result = pyxl_del.run(SAMPLE_PANEL_PATH)
    cfg = result.config
    risk = cfg.risk
    lgd = [risk.segment_lgd(s) for s in result.segments]
    matrices, start = segment_chain(project(result, months=args.months, config=cfg), args.months)
    seconds, cpu, sim = timed(lambda: simulate_credit_loss(
        matrices, start, lgd, risk.rho, n_paths=args.paths, seed=risk.seed, persistence=risk.z_persistence,
        config=cfg, segments=result.segments), args.repeat)
    print(f"Monte Carlo: {args.paths:,} paths x {args.months} months x {len(result.segments)} segments "
          f"in {seconds:.3f} s wall, {cpu:.3f} s CPU (target < 2 s: {'ok' if seconds < 2 else 'MISSED'})")
    for q in risk.confidence:
        print(f"  {args.months}-month VaR {q:.0%} {sim.var(q) / sim.exposure:.2%} of EAD, "
              f"ES {sim.es(q) / sim.exposure:.2%}")

    order = list(cfg.buckets.order)
    one_step = np.eye(len(order))
    current, writeoff = order.index("CURRENT"), order.index("WRITEOFF")
    one_step[current, current], one_step[current, writeoff] = 0.97, 0.03
    book = np.zeros((1, len(order)))
    book[0, current] = 1.0
    seconds, _, pool = timed(lambda: simulate_credit_loss(one_step[None, None], book, 1.0, 0.10, n_paths=100_000,
                                                      seed=1, n_loans=100_000, config=cfg), 1)
    for q in (0.95, 0.99):
        closed = vasicek_quantile(0.03, 0.10, q)
        print(f"Vasicek check (PD 3%, rho 0.10, LGD 100%, 100k loans, 100k paths, {seconds:.2f} s): VaR {q:.0%} "
              f"simulated {pool.var(q):.4%} vs closed form {closed:.4%} ({pool.var(q) / closed - 1:+.2%})")

    seconds, _, analysis = timed(lambda: _all_views(result), args.repeat)
    el = analysis.el.set_index(["segment", "cohort"]).loc[("Portfolio", "All")]
    var = analysis.var
    print(f"All risk views of the sample (EL, capital, concentration, VaR {var.horizon}m, stress, alerts): "
          f"{seconds:.2f} s")
    print(f"  outstanding EAD {el['ead']:,.0f}; EL 12m {el['el_12m']:,.0f} ({el['el_12m_rate']:.2%}); "
          f"EL lifetime {el['el_lifetime']:,.0f} ({el['el_lifetime_rate']:.2%})")
    top = max(risk.confidence)
    print(f"  {var.horizon}-month credit loss: mean {var.total.mean():,.0f}; VaR {top:.0%} {var.var(top):,.0f} "
          f"({var.var(top) / var.exposure:.2%}); ES {top:.0%} {var.es(top):,.0f}")
    summary = analysis.stress.summary.set_index("scenario")
    for name, row in summary.iterrows():
        print(f"  {name:17} lifetime EL {row['el_lifetime']:>14,.0f} ({row['el_lifetime_vs_baseline']:+.1%}), "
              f"rank {row['rank']}")


def _all_views(result) -> RiskAnalysis:
    analysis = RiskAnalysis.of(result)
    for view in ("el", "capital", "concentration", "var", "stress", "alerts"):
        getattr(analysis, view)
    return analysis


if __name__ == "__main__":
    main()
