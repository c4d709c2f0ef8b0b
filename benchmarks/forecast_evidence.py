"""Defaults chosen by evidence (issue 14): every candidate setting of `pyxl-del tune` backtested on several kinds of
book, beside the benchmarks and, on simulated books, the oracle that knows the truth.

Books: the bundled sample; N simulated vintage books (`simulate_vintage_book`: cohort effects, a thin segment);
N crisis books (the same with roll-forward rates x1.8 for six reporting months inside the backtest window); both
again with neighbouring vintages alike (log factors an AR(1) series over the cohorts, correlation 0.9); N
agency-shaped books with and without a shock (three monthly cohorts followed for four years, scored from every
usable origin, as one quarter of agency loans is); N thin prime books (the same shape at the excerpt's size, 145
loans a cohort, and prime hazards), at the last origins and from every usable one; N multi-era books (three such
quarters years apart in one panel: middle hazards, a two-year crisis, prime hazards) at both sizes, from every
usable origin; the Fannie Mae 2017Q1 excerpt when its reader (`pyxl_del.datasets.fannie`) and the file are present.

Each book is backtested at its last --origins as-of months, 1..12 months ahead; the score of a model is the
Portfolio MAE, the mean over months ahead of each month's MAE, per DEL type. Per kind of book (the simulated seeds
averaged) the table gives each candidate's MAE, its difference to the best benchmark (chain-ladder or last value,
whichever is lower for that DEL type) with a 90% interval from a cohort-block bootstrap (blocks of --block
consecutive cohorts resampled with replacement, the same draws for every model, so the difference is paired; the
books of a kind are resampled independently and averaged), and on simulated books the ratio to the oracle's MAE.
The oracle knows the truth, a shock after the as-of included; on books with a shock two more rows show the floor
of a forecaster that knows the chain and the cohort factors but not the shock to come (`VintageBook.known_at`): the
shock not yet seen is 1 ("unseen"), or the last seen step's, carried on ("carried on").

    python benchmarks/forecast_evidence.py [--quick] [--seeds 5] [--origins 12] [--boot 400] [--block 3] [--only TEXT]

Prints Markdown (docs/backtesting.md quotes it). --quick: 2 seeds, 6 origins, 200 draws; --only: the kinds of book
whose name contains TEXT (e.g. "multi-era").
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import pyxl_del
from pyxl_del.backtest.bootstrap import portfolio_mae_draws
from pyxl_del.backtest.rolling import (
    FORECASTERS,
    Calendar,
    backtest_forecasters,
    oracle,
)
from pyxl_del.backtest.tune import BENCHMARKS, CANDIDATES, CURRENT, resolve_candidates
from pyxl_del.datasets.sample import (
    Crisis,
    VintageBook,
    load_sample_panel,
    simulate_vintage_book,
)
from pyxl_del.engine.config import DEL_TYPES, Config
from pyxl_del.engine.data import PanelStats, month_label, validate_panel

FANNIE = Path("/work/shared/data/fannie-mae-2017Q1/2017Q1-part.csv")
# The excerpt spans 63 months on book: the shipped config (max_mob 36) forecasts its cohorts to MOB 36 (2020-03), so
# its backtest ends before COVID; max_mob 63 reaches the data's end (2022-03). Nothing else is set for it.
FANNIE_MAX_MOB = (36, 63)
CRISIS = Crisis(start="2025-03", months=6, factor=1.8)  # inside the last 12 as-of months of a 2025-12 book
HORIZON = 12
# Vintage books whose neighbouring vintages are alike: the cohorts' log factors an AR(1) series with this lag-one
# correlation (underwriting and the economy at origination change slowly; the books above have independent ones).
VINTAGE_CORRELATION = 0.9
# Agency-shaped books: the first 3 cohorts of a 40-month simulated book, so 37 usable origins at max_mob 36; the
# shock (roll-forward x2.5 for a year) falls in their third year.
AGENCY_SPAN = 40
QUARTER = 3  # monthly cohorts
AGENCY_CRISIS = Crisis(start="2024-01", months=12, factor=2.5)
# Thin prime books: the agency shape at the excerpt's size (145 loans a cohort) and a prime mortgage's low hazards,
# where each cohort's DEL is a handful of loans.
THIN_PRIME_LOANS = {"P": 70, "R": 40, "C": 35}
THIN_PRIME_PROFILES = {"P": {"risk": 0.15, "prepay": 0.02}, "R": {"risk": 0.2, "prepay": 0.02},
                       "C": {"risk": 0.3, "prepay": 0.02}}
AGENCY_LOANS = {"P": 200, "R": 120, "C": 120}
# Multi-era books: three quarters years apart in one panel, (as_of of the simulated book, crisis, profiles) each:
# middle hazards (cohorts 2000-01..03), a two-year crisis x2.5 from 2008-01 (2007-01..03), prime hazards
# (2017-01..03); each followed AGENCY_SPAN months.
MULTI_ERAS = (("2003-04", None, None),
              ("2010-04", Crisis(start="2008-01", months=24, factor=2.5), None),
              ("2020-04", None, THIN_PRIME_PROFILES))
EVERY_ORIGIN = 10_000
ORACLE_UNSEEN, ORACLE_CARRIED = "oracle_shock_unseen", "oracle_shock_carried"
ORACLES = ("oracle", ORACLE_UNSEEN, ORACLE_CARRIED)


@dataclass(frozen=True)
class Book:
    kind: str
    panel: pd.DataFrame
    config: Config
    oracles: Mapping[str, Callable] = field(default_factory=dict)  # "oracle" and, with a shock, `_oracles`'s others
    origins: int | None = None  # as-of months scored: the last --origins unless set (a large number: every usable one)


def _oracles(*eras: VintageBook, first: int | None = None) -> dict[str, Callable]:
    """The oracle (the true chain and cohort factors, the shock to come included) and, on a book with a shock,
    the oracles of a forecaster at each as-of who knows all but the shock still to come. ``eras``: one simulated
    book, or the books whose first ``first`` cohorts a multi-era panel joins."""
    cohorts = tuple(c for era in eras for c in era.cohorts[:first])
    segments = eras[0].segments
    oracles = {"oracle": oracle(np.concatenate([era.matrices[:first] for era in eras]), cohorts, segments)}
    if any((era.crisis[:first] != 1).any() for era in eras):
        for name, persist in ((ORACLE_UNSEEN, False), (ORACLE_CARRIED, True)):
            oracles[name] = _known_at_as_of(eras, first, cohorts, segments, persist=persist)
    return oracles


def _known_at_as_of(eras: Sequence[VintageBook], first: int | None, cohorts: tuple[str, ...],
                    segments: tuple[str, ...], *, persist: bool) -> Callable:
    def forecaster(stats: PanelStats, config: Config):
        as_of = month_label([stats.reporting_month])[0]
        matrices = np.concatenate([era.known_at(as_of, persist=persist, config=config)[:first] for era in eras])
        return oracle(matrices, cohorts, segments)(stats, config)

    return forecaster


def _books(seeds: int) -> list[Book]:
    books = [Book("bundled sample", load_sample_panel(), Config())]
    for kind, crisis, correlation in (("vintage books", None, 0.0), ("crisis books", CRISIS, 0.0),
                                      (f"vintage books, neighbours alike ({VINTAGE_CORRELATION})", None,
                                       VINTAGE_CORRELATION),
                                      (f"crisis books, neighbours alike ({VINTAGE_CORRELATION})", CRISIS,
                                       VINTAGE_CORRELATION)):
        for seed in range(seeds):
            book = simulate_vintage_book(1000 + seed, crisis=crisis, cohort_correlation=correlation)
            books.append(Book(kind, book.panel, Config(), _oracles(book)))
    books += [_agency(seed, crisis) for crisis in (None, AGENCY_CRISIS) for seed in range(seeds)]
    books += [_thin_prime(seed, origins) for origins in (None, EVERY_ORIGIN) for seed in range(seeds)]
    books += [_multi_era(seed, loans) for loans in (AGENCY_LOANS, THIN_PRIME_LOANS) for seed in range(seeds)]
    return books + _fannie()


def _quarter(seed: int, loans: dict[str, int], **simulate) -> tuple[pd.DataFrame, VintageBook]:
    """The first three monthly cohorts of a simulated book followed for AGENCY_SPAN months, like one quarter of agency
    loans, and the whole book (``simulate``: `simulate_vintage_book`'s crisis, profiles or as_of)."""
    config = Config()
    book = simulate_vintage_book(seed, cohorts=AGENCY_SPAN, loans=loans, config=config, **simulate)
    return book.panel[book.panel[config.columns.cohort].astype(str).isin(book.cohorts[:QUARTER])], book


def _one_quarter(kind: str, seed: int, loans: dict[str, int], *, origins: int | None, **simulate) -> Book:
    """One quarter (`_quarter`) with the oracle of the whole book."""
    panel, book = _quarter(seed, loans, **simulate)
    return Book(kind, panel, Config(), _oracles(book), origins=origins)


def _multi_era(seed: int, loans: dict[str, int]) -> Book:
    """Three quarters of MULTI_ERAS in one panel, years apart (the shape of the issue's real panel: acquisitions of
    2000, 2007 and 2017), scored from every usable origin; the oracles know each era's chain."""
    config = Config()
    panels, eras = [], []
    for k, (as_of, crisis, profiles) in enumerate(MULTI_ERAS):
        panel, book = _quarter(5000 + 10 * seed + k, loans, as_of=as_of, crisis=crisis, profiles=profiles)
        # each era's loans numbered from 1: a prefix per era keeps the ids apart
        panels.append(panel.assign(**{config.columns.loan_id: f"e{k}-" + panel[config.columns.loan_id].astype(str)}))
        eras.append(book)
    kind = f"multi-era books ({sum(loans.values())} loans a quarter), every usable origin"
    return Book(kind, pd.concat(panels, ignore_index=True), config, _oracles(*eras, first=QUARTER),
                origins=EVERY_ORIGIN)


def _agency(seed: int, crisis: Crisis | None) -> Book:
    """One agency quarter: three cohorts of 440 loans (segments of 200, 120 and 120), scored from every usable
    origin; with a calendar shock or without."""
    kind = "agency-shaped books, every usable origin" + (", with a shock" if crisis else "")
    return _one_quarter(kind, 3000 + seed, AGENCY_LOANS, origins=EVERY_ORIGIN, crisis=crisis)


def _thin_prime(seed: int, origins: int | None) -> Book:
    """The agency shape at the size of the real excerpt (three cohorts of 145 loans) with prime hazards (DEL30
    around 1%): the book where a cohort's DEL is a few loans, scored at the last origins or every usable one."""
    kind = "thin prime books (3 cohorts x 145 loans), " + ("every usable origin" if origins else "last origins")
    return _one_quarter(kind, 4000 + seed, THIN_PRIME_LOANS, origins=origins, profiles=THIN_PRIME_PROFILES)


def _fannie() -> list[Book]:
    """The real excerpt, when the file exists (the data stays where it is: nothing is written), at each max_mob."""
    if not FANNIE.is_file():
        print(f"skipped the Fannie Mae excerpt: {FANNIE} is absent")
        return []
    from pyxl_del.datasets.fannie import read_fannie

    panel, _summary = read_fannie([FANNIE], Config().columns.model_dump())
    books = [Book(f"Fannie Mae 2017Q1 excerpt, max_mob {m}", panel, Config().with_overrides(forecast={"max_mob": m}))
             for m in FANNIE_MAX_MOB]
    # The shipped max_mob from every usable as-of month (from the first cohort's MOB 1): the young book's origins,
    # where the chain rests on a step or two and every forecast cell lies in its tail.
    return books + [Book(f"Fannie Mae 2017Q1 excerpt, max_mob {FANNIE_MAX_MOB[0]}, every usable origin", panel,
                         books[0].config, origins=EVERY_ORIGIN)]


# ------------------------------------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class Scored:
    """One book's Portfolio MAE per model and DEL type and its bootstrap replicates."""

    models: tuple[str, ...]
    mae: np.ndarray  # (models, DEL types)
    draws: np.ndarray  # (R, models, DEL types)


def _score(book: Book, origins: int, boot: int, block: int, rng: np.random.Generator) -> Scored:
    panel = validate_panel(book.panel, book.config, book.kind)
    resolved = resolve_candidates(book.config, CANDIDATES)
    forecasters = {name: _fitted(c) for name, c in resolved.configs.items()}
    forecasters |= {name: FORECASTERS[name] for name in BENCHMARKS}
    forecasters |= book.oracles
    as_of = Calendar.of(panel, book.config.forecast.max_mob).last(book.origins or origins)
    result = backtest_forecasters(panel, book.config, as_of, forecasters,
                                  horizon=HORIZON)
    scored = portfolio_mae_draws(result.cells, HORIZON, rng, draws=boot, block=block)
    # A book with too few cohort blocks for an interval (the Fannie excerpt: one quarter) scores NaN replicates.
    draws = scored.draws if scored.draws is not None else np.full((boot, *scored.mae.shape), np.nan)
    return Scored(scored.models, scored.mae, draws)


def _fitted(config: Config):
    markov = FORECASTERS["markov"]
    return lambda stats, _config: markov(stats, config)


# ------------------------------------------------------------------------------------------------ the table


def _kind_table(scored: list[Scored]) -> pd.DataFrame:
    """A kind's rows: candidates, benchmarks, oracle; the books' MAE averaged, the difference's interval from the
    averaged replicates. Models every book of the kind has (candidates resolve the same on every book of a kind)."""
    models = [m for m in scored[0].models if all(m in s.models for s in scored)]
    take = [[s.models.index(m) for m in models] for s in scored]
    mae = np.mean([s.mae[t] for s, t in zip(scored, take, strict=True)], axis=0)  # (models, D)
    draws = np.mean([s.draws[:, t] for s, t in zip(scored, take, strict=True)], axis=0)  # (R, models, D)
    bench = [models.index(b) for b in BENCHMARKS]
    best = np.array(bench)[np.argmin(mae[bench], axis=0)]  # per DEL type
    rows = []
    for m, model in enumerate(models):
        row = {"model": model}
        for d, del_type in enumerate(DEL_TYPES):
            diff = draws[:, m, d] - draws[:, best[d], d]
            lo, hi = np.nanpercentile(diff, [5, 95]) if np.isfinite(diff).any() else (np.nan, np.nan)
            row[f"{del_type}"] = mae[m, d]
            row[f"{del_type}_diff"] = mae[m, d] - mae[best[d], d]
            row[f"{del_type}_lo"], row[f"{del_type}_hi"] = lo, hi
            row[f"{del_type}_best"] = models[best[d]]
            if "oracle" in models:
                row[f"{del_type}_oracle"] = mae[m, d] / mae[models.index("oracle"), d]
        rows.append(row)
    return pd.DataFrame(rows)


def _pp(value: float, signed: bool = False) -> str:
    return f"{value * 100:+.3f}" if signed else f"{value * 100:.3f}"


def markdown(kind: str, n_books: int, table: pd.DataFrame) -> str:
    labels = {"chain_ladder": "chain-ladder", "carry_forward": "last value", "oracle": "oracle (the truth)",
              ORACLE_UNSEEN: "oracle, shock after the as-of unseen", ORACLE_CARRIED: "oracle, last shock carried on"}
    oracle_known = any(c.endswith("_oracle") for c in table.columns)
    head = ["setting", *[f"{d} MAE (diff. to best benchmark, 90% interval)" for d in DEL_TYPES]]
    if oracle_known:
        head.append("x oracle (DEL30 / 60 / 90)")
    best = ", ".join(f"{d}: {labels[table[f'{d}_best'].iloc[0]]}" for d in DEL_TYPES)
    lines = [(f"**{kind}** ({n_books} book{'s' if n_books > 1 else ''}; best benchmark {best}); MAE in DEL "
             f"points (pp)"), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in table.iterrows():
        name = labels.get(row["model"], row["model"])
        cells = [f"**{name}**" if row["model"] == CURRENT else name]
        for d in DEL_TYPES:
            if row["model"] in BENCHMARKS:
                cells.append(_pp(row[d]))
            elif row["model"] in ORACLES:
                cells.append(f"{_pp(row[d])} ({_pp(row[f'{d}_diff'], True)})")
            elif np.isnan(row[f"{d}_lo"]):
                cells.append(f"{_pp(row[d])} ({_pp(row[f'{d}_diff'], True)}, too few cohorts for an interval)")
            else:
                cells.append(f"{_pp(row[d])} ({_pp(row[f'{d}_diff'], True)} [{_pp(row[f'{d}_lo'], True)}, "
                             f"{_pp(row[f'{d}_hi'], True)}])")
        if oracle_known:
            cells.append(" / ".join(f"{row[f'{d}_oracle']:.2f}" for d in DEL_TYPES))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 6 origins, 200 bootstrap draws")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--origins", type=int, default=12)
    parser.add_argument("--boot", type=int, default=400)
    parser.add_argument("--block", type=int, default=3, help="consecutive cohorts per bootstrap block")
    parser.add_argument("--only", default="", help="only the kinds of book whose name contains this text")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.origins, args.boot = 2, 6, 200
    logging.basicConfig(level=logging.ERROR)
    started = time.perf_counter()
    rng = np.random.default_rng(20241405)
    by_kind: dict[str, list[Scored]] = {}
    for book in _books(args.seeds):
        if args.only not in book.kind:
            continue
        t = time.perf_counter()
        by_kind.setdefault(book.kind, []).append(_score(book, args.origins, args.boot, args.block, rng))
        print(f"  {book.kind}: {len(book.panel):,} rows in {time.perf_counter() - t:.1f} s")
    print(f"\npyxl_del {pyxl_del.__version__}; last {args.origins} as-of months, 1..{HORIZON} months ahead, "
          f"{args.seeds} seeds per simulated kind, {args.boot} bootstrap draws of {args.block}-cohort blocks; "
          f"{time.perf_counter() - started:.0f} s\n")
    for kind, scored in by_kind.items():
        print(markdown(kind, len(scored), _kind_table(scored)))
        print()


if __name__ == "__main__":
    main()
