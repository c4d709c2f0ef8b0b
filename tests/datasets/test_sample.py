"""The synthetic panel generator: grid shape, invariants, exact transition distribution, bundled file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyxl_del.datasets.sample import (
    SAMPLE_PANEL_PATH,
    SAMPLE_SEGMENTS,
    generate_sample,
    iter_panel_parts,
    load_sample_panel,
    realistic_matrices,
    simulate_panel,
    write_panel,
)
from pyxl_del.engine.config import Config

CFG = Config()
ORDER = list(CFG.buckets.order)
K = len(ORDER)
IDX = {b: i for i, b in enumerate(ORDER)}
CUSTOM = Config.model_validate(
    {"columns": {"loan_id": "id", "cohort": "vintage", "mob": "age", "segment": "product", "state": "bucket",
                 "ead": "balance"}}
)


def known_matrix() -> np.ndarray:
    """Roll rates high enough that every non-absorbing row is visited often in a small panel."""
    P = np.array(
        [
            [0.70, 0.15, 0.00, 0.00, 0.00, 0.00, 0.15],
            [0.40, 0.20, 0.35, 0.00, 0.00, 0.00, 0.05],
            [0.20, 0.10, 0.20, 0.50, 0.00, 0.00, 0.00],
            [0.10, 0.00, 0.10, 0.30, 0.50, 0.00, 0.00],
            [0.05, 0.00, 0.00, 0.00, 0.55, 0.40, 0.00],
            [0.00, 0.00, 0.00, 0.00, 0.00, 1.00, 0.00],
            [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 1.00],
        ]
    )
    assert np.allclose(P.sum(axis=1), 1)
    return P


def sim(P=None, cfg: Config = CFG, **kw) -> pd.DataFrame:
    args = dict(cohorts=["2024-01", "2024-06", "2024-12"], as_of="2025-03", loans_per_cohort=40,
                segments=["CASH LOAN", "CD"], seed=7, config=cfg)
    args.update(kw)
    return simulate_panel(known_matrix() if P is None else P, **args)


def transition_counts(df: pd.DataFrame, cfg: Config = CFG, by: list[str] | None = None) -> pd.DataFrame:
    """Counts of (from, to) pairs between consecutive MOBs of the same loan, optionally split by keys."""
    loan, mob, state = df[cfg["loan_id"]].to_numpy(), df[cfg["mob"]].to_numpy(), df[cfg["state"]]
    codes = pd.Categorical(state, categories=ORDER).codes
    same = (loan[1:] == loan[:-1]) & (mob[1:] == mob[:-1] + 1)
    pairs = pd.DataFrame({"from": codes[:-1][same], "to": codes[1:][same]})
    for key in by or []:
        pairs[key] = df[key].to_numpy()[:-1][same]
    return pairs.value_counts().rename("n").reset_index()


def assert_follows(P: np.ndarray, pairs: pd.DataFrame, min_rows: int = 300) -> int:
    """Every from-row with enough transitions matches P within 4 standard errors; returns rows checked."""
    counts = np.zeros((K, K))
    np.add.at(counts, (pairs["from"].to_numpy(), pairs["to"].to_numpy()), pairs["n"].to_numpy())
    checked = 0
    for i in range(K):
        n = counts[i].sum()
        if n < min_rows:
            continue
        freq = counts[i] / n
        se = np.sqrt(P[i] * (1 - P[i]) / n)
        bad = np.abs(freq - P[i]) > 4 * se + 1e-12
        assert not bad.any(), f"row {ORDER[i]}: freq {freq.round(4)} vs P {P[i]} (n={n:.0f})"
        checked += 1
    return checked


# ---------------------------------------------------------------------------------------------- basics


def test_same_seed_same_frame_other_seed_differs():
    a, b, c = sim(seed=11), sim(seed=11), sim(seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a[CFG["state"]].equals(c[CFG["state"]])


@pytest.mark.parametrize("cfg", [CFG, CUSTOM], ids=["default-columns", "custom-columns"])
def test_columns_dtypes_and_size(cfg: Config):
    df = sim(cfg=cfg)
    assert list(df.columns) == [cfg[k] for k in ("loan_id", "cohort", "mob", "segment", "state", "ead")]
    for key in ("loan_id", "cohort", "segment", "state"):
        assert pd.api.types.is_string_dtype(df[cfg[key]]), key
    assert df[cfg["mob"]].dtype == np.int64
    assert df[cfg["ead"]].dtype == np.float64
    # 2 segments x 40 loans x (MOB 0..14, 0..9, 0..3)
    assert len(df) == 2 * 40 * (15 + 10 + 4)
    assert df[cfg["loan_id"]].nunique() == 2 * 3 * 40
    assert set(df[cfg["state"]]) <= set(ORDER)
    assert set(df[cfg["segment"]]) == {"CASH LOAN", "CD"}
    assert set(df[cfg["cohort"]]) == {"2024-01", "2024-06", "2024-12"}


def test_loan_ids_look_right_and_frame_is_sorted():
    df = sim(segments=["CASH LOAN", "CD", "TW/Moto"])
    ids = df[CFG["loan_id"]]
    assert ids.str.fullmatch(r"(CASH|CD|TW)-\d{4}-\d{2}-\d{6}").all()
    assert ids.iloc[0] == "CASH-2024-01-000001"
    first = df.groupby(CFG["loan_id"]).first()
    assert (first.index.str.slice(-14, -7).to_numpy() == first[CFG["cohort"]].to_numpy()).all()
    resorted = df.sort_values([CFG["loan_id"], CFG["mob"]], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(df, resorted)


def test_clashing_segment_prefixes_still_give_unique_ids():
    df = sim(segments=["CASH LOAN", "CASH CARD", "cash/loan"], loans_per_cohort=3)
    per_loan = df.groupby(CFG["loan_id"])[CFG["segment"]].nunique()
    assert (per_loan == 1).all() and len(per_loan) == 3 * 3 * 3


def test_every_loan_has_mob_zero_to_last_without_gaps():
    df = sim(max_mob=12)
    g = df.groupby(CFG["loan_id"])
    mob = g[CFG["mob"]]
    cohort = g[CFG["cohort"]].first()
    expected_last = np.minimum(
        (pd.Period("2025-03", "M") - pd.PeriodIndex(cohort, freq="M")).map(lambda d: d.n), 12
    )
    assert (mob.min() == 0).all()
    assert (mob.max().to_numpy() == np.asarray(expected_last)).all()
    assert (mob.count() == mob.max() + 1).all()
    assert (g[CFG["segment"]].nunique() == 1).all() and (g[CFG["cohort"]].nunique() == 1).all()


def test_absorbing_never_left_and_ead_rules():
    df = sim(P=realistic_matrices(segments=["CASH LOAN", "CD"]) * 1.0, loans_per_cohort=300)
    state, ead, loan = df[CFG["state"]], df[CFG["ead"]], df[CFG["loan_id"]]
    absorbing = state.isin(CFG.buckets.absorbing)
    same_loan = loan.eq(loan.shift())
    # once absorbing, the next row of the same loan is the same state
    prev_abs = absorbing.shift(fill_value=False) & same_loan
    assert (state[prev_abs] == state.shift()[prev_abs]).all()
    assert (ead >= 0).all()
    assert (ead[state == "PREPAY"] == 0).all()
    assert (ead[state.isin(["CURRENT", "DPD1+", "DPD30+", "DPD60+", "DPD90+"])] > 0).all()
    # WRITEOFF keeps the balance of the month before write-off, unchanged afterwards
    wo = state.eq("WRITEOFF")
    entering = wo & ~wo.shift(fill_value=False) & same_loan
    assert entering.any()
    assert (ead[entering].to_numpy() == ead.shift()[entering].to_numpy()).all()
    staying = wo & wo.shift(fill_value=False) & same_loan
    assert (ead[staying].to_numpy() == ead.shift()[staying].to_numpy()).all()
    # non-absorbing balances amortise: never above the previous month's
    performing = ~absorbing & same_loan
    assert (ead[performing].to_numpy() <= ead.shift()[performing].to_numpy()).all()


def test_ead_amortises_to_zero_but_not_below():
    df = sim(P=np.eye(K), amortisation=0.25, ead0_mean=1000.0, max_mob=8, loans_per_cohort=5)
    assert (df[CFG["ead"]] >= 0).all()
    assert (df.loc[df[CFG["mob"]] >= 4, CFG["ead"]] == 0).all()
    first = df[df[CFG["mob"]] == 0][CFG["ead"]]
    assert (first > 0).all()


def test_initial_state_and_empty_panel():
    df = sim(initial_state="DPD30+", P=np.eye(K), loans_per_cohort=2)
    assert (df[CFG["state"]] == "DPD30+").all()
    empty = sim(loans_per_cohort=0, cfg=CUSTOM)
    assert empty.empty and list(empty.columns) == list(sim(cfg=CUSTOM, loans_per_cohort=1).columns)


def test_per_segment_sizes_counts_and_id_start():
    df = sim(loans_per_cohort={"CASH LOAN": 5, "CD": 2}, ead0_mean={"CASH LOAN": 50_000, "CD": 5_000},
             id_start=100)
    per_seg = df.groupby(CFG["segment"])[CFG["loan_id"]].nunique()
    assert per_seg.to_dict() == {"CASH LOAN": 15, "CD": 6}
    assert df[CFG["loan_id"]].str.slice(-6).astype(int).min() == 101
    mob0 = df[df[CFG["mob"]] == 0].groupby(CFG["segment"])[CFG["ead"]].mean()
    assert mob0["CASH LOAN"] > 3 * mob0["CD"]


# ------------------------------------------------------------------------------ transition distribution


def test_empirical_transitions_match_known_matrix():
    P = known_matrix()
    df = simulate_panel(P, cohorts=["2024-01"], as_of="2024-09", loans_per_cohort=20_000,
                        segments=["CASH LOAN"], seed=2024)
    assert assert_follows(P, transition_counts(df)) == K  # every row, absorbing ones included


def test_time_varying_segment_matrices_are_followed_step_by_step():
    rng = np.random.default_rng(5)
    S, M = 2, 3
    P = rng.dirichlet(np.ones(K), size=(S, M, K))
    for a in (IDX["WRITEOFF"], IDX["PREPAY"]):
        P[:, :, a] = np.eye(K)[a]
    df = simulate_panel(P, cohorts=["2024-01"], as_of="2024-06", loans_per_cohort=6_000,
                        segments=["A", "B"], seed=3, initial_state="DPD1+")
    pairs = transition_counts(df, by=[CFG["segment"], CFG["mob"]])
    checked = 0
    for s, seg in enumerate(["A", "B"]):
        for m in range(5):  # steps 3 and 4 reuse the last matrix
            sub = pairs[(pairs[CFG["segment"]] == seg) & (pairs[CFG["mob"]] == m)]
            checked += assert_follows(P[s, min(m, M - 1)], sub, min_rows=200)
    assert checked >= 10


def test_row_short_of_one_keeps_the_rest_in_its_own_state():
    P = known_matrix()
    P[IDX["CURRENT"]] = [0.5, 0.2, 0, 0, 0, 0, 0]  # sums to 0.7: 0.3 more stays CURRENT
    P[IDX["DPD1+"]] = 0.0  # all-zero row: stay
    df = simulate_panel(P, cohorts=["2024-01"], as_of="2024-04", loans_per_cohort=20_000,
                        segments=["X"], seed=9)
    expected = P.copy()
    expected[IDX["CURRENT"], IDX["CURRENT"]] = 0.8
    expected[IDX["DPD1+"], IDX["DPD1+"]] = 1.0
    assert assert_follows(expected, transition_counts(df)) >= 2


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda P: P[:, :3], "must end in"),
        (lambda P: P * 1.5, "sums to"),
        (lambda P: np.where(np.eye(K, dtype=bool), P, -P), "negative"),
        (lambda P: np.vstack([P[:5], [[0.1, 0, 0, 0, 0, 0.9, 0]], P[6:]]), "absorbing state 'WRITEOFF'"),
        (lambda P: np.stack([P] * 3)[None], "segments"),
        (lambda P: np.full_like(P, np.nan), "NaN"),
    ],
)
def test_bad_matrices_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        sim(P=change(known_matrix()))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"cohorts": ["2025-04"]}, "after as_of"),
        ({"as_of": "2025/03"}, "YYYY-MM"),
        ({"cohorts": ["2024-13"]}, "YYYY-MM"),
        ({"initial_state": "LOST"}, "initial_state"),
        ({"loans_per_cohort": {"CASH LOAN": 3}}, "no value for segments"),
        ({"segments": ["A", "A"]}, "distinct"),
    ],
)
def test_bad_arguments_are_rejected(kw, message):
    with pytest.raises(ValueError, match=message):
        sim(**kw)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_cohorts=st.integers(1, 4),
    loans=st.integers(0, 15),
    max_mob=st.integers(0, 8),
    sparsity=st.floats(0, 0.8),
)
def test_invariants_hold_for_random_matrices(seed, n_cohorts, loans, max_mob, sparsity):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(K), size=(2, 3, K))
    P *= rng.random(P.shape) >= sparsity  # rows may now sum below 1, or be all zero
    for a in (IDX["WRITEOFF"], IDX["PREPAY"]):
        P[:, :, a] = np.eye(K)[a]
    cohorts = [f"2025-{m:02d}" for m in range(1, n_cohorts + 1)]
    df = simulate_panel(P, cohorts=cohorts, as_of="2025-08", loans_per_cohort=loans, segments=["S1", "S2"],
                        seed=seed, max_mob=max_mob, config=CUSTOM)
    assert len(df) == 2 * loans * sum(min(7 - i, max_mob) + 1 for i in range(n_cohorts))
    if df.empty:
        return
    loan, mob, state, ead = df["id"], df["age"], df["bucket"], df["balance"]
    same = loan.eq(loan.shift())
    assert (mob[~same] == 0).all() and (mob[same] == mob.shift()[same] + 1).all()
    was_abs = state.shift().isin(CFG.buckets.absorbing) & same
    assert (state[was_abs] == state.shift()[was_abs]).all()
    assert (ead >= 0).all() and (ead[state == "PREPAY"] == 0).all()


# ------------------------------------------------------------------------------ realistic matrices


def test_realistic_matrices_are_stochastic_and_plausible():
    P = realistic_matrices()
    S, M = len(SAMPLE_SEGMENTS), CFG.forecast.max_mob
    assert P.shape == (S, M, K, K)
    assert (P >= 0).all() and np.allclose(P.sum(axis=-1), 1)
    for a in ("WRITEOFF", "PREPAY"):
        assert (P[:, :, IDX[a], :] == np.eye(K)[IDX[a]]).all()
    roll = P[:, :, IDX["CURRENT"], IDX["DPD1+"]]
    peak = roll.argmax(axis=1)
    assert ((peak >= 5) & (peak <= 11)).all()
    assert (roll.max(axis=1) > 1.4 * roll[:, 0]).all() and (roll.max(axis=1) > 1.2 * roll[:, -1]).all()
    assert (P[:, 6:, IDX["CURRENT"], IDX["PREPAY"]] > 0.005).all()
    assert (P[:, :, IDX["DPD1+"], IDX["CURRENT"]] > 0.3).all()
    assert (P[:, :, IDX["DPD90+"], IDX["WRITEOFF"]] > 0.1).all()

    # DEL30 at MOB 12 (share of the not-prepaid loans in DEL30 buckets), by segment
    x = np.zeros((S, K))
    x[:, IDX["CURRENT"]] = 1
    for m in range(12):
        x = np.einsum("sk,skj->sj", x, P[:, m])
    bad = [IDX[b] for b in CFG.buckets.del30]
    del30 = dict(zip(SAMPLE_SEGMENTS, x[:, bad].sum(axis=1) / (1 - x[:, IDX["PREPAY"]]), strict=True))
    assert 0.02 <= del30["CD"] < del30["TW/Moto"] < del30["CASH LOAN"] <= 0.12, del30


def test_realistic_matrices_follow_the_config_bucket_order():
    # Another order that still lists the live buckets best to worst (the config refuses any other).
    order = ["PREPAY", "WRITEOFF", *[b for b in ORDER if b not in ("PREPAY", "WRITEOFF")]]
    reordered = Config.model_validate({"buckets": {"order": order}})
    a = realistic_matrices(max_mob=4)
    b = realistic_matrices(reordered, max_mob=4)
    at = [list(ORDER).index(bucket) for bucket in order]
    np.testing.assert_array_equal(b, a[..., at, :][..., :, at])
    assert realistic_matrices(segments=["Unknown"], max_mob=2).shape == (1, 2, K, K)


# ------------------------------------------------------------------------------ sample and files


def test_generate_sample_shape_and_cohorts():
    df = generate_sample(loans_per_cohort=20, n_cohorts=6, as_of="2024-03")
    assert sorted(df[CFG["cohort"]].unique()) == ["2023-10", "2023-11", "2023-12", "2024-01", "2024-02", "2024-03"]
    assert set(df[CFG["segment"]]) == set(SAMPLE_SEGMENTS)
    assert len(df) == 3 * 20 * sum(range(1, 7))
    pd.testing.assert_frame_equal(df, generate_sample(loans_per_cohort=20, n_cohorts=6, as_of="2024-03"))
    custom = generate_sample(loans_per_cohort=20, n_cohorts=6, as_of="2024-03", config=CUSTOM)
    assert list(custom.columns) == ["id", "vintage", "age", "product", "bucket", "balance"]
    np.testing.assert_array_equal(custom["balance"].to_numpy(), df[CFG["ead"]].to_numpy())


def test_bundled_file_equals_a_fresh_generation():
    assert SAMPLE_PANEL_PATH.is_file()
    assert SAMPLE_PANEL_PATH.stat().st_size < 4 * 2**20
    bundled = pd.read_parquet(SAMPLE_PANEL_PATH)
    fresh = generate_sample()
    pd.testing.assert_frame_equal(bundled, fresh, check_exact=True)
    assert len(fresh) == 3 * 250 * sum(range(1, 31))
    renamed = load_sample_panel(CUSTOM)
    assert list(renamed.columns) == ["id", "vintage", "age", "product", "bucket", "balance"]


def test_write_panel_single_files_round_trip(tmp_path):
    df = sim(loans_per_cohort=3)
    (pq_path,) = write_panel(df, tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(pq_path), df)
    (csv_path,) = write_panel(df, tmp_path / "sub" / "p.csv")
    back = pd.read_csv(csv_path, encoding="utf-8", dtype={CFG["cohort"]: str})
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    (xlsx_path,) = write_panel(df.head(50), tmp_path / "p.xlsx")
    back = pd.read_excel(xlsx_path, sheet_name="Data", dtype={CFG["cohort"]: str})
    pd.testing.assert_frame_equal(back, df.head(50), check_dtype=False)
    with pytest.raises(ValueError, match="unknown panel file type"):
        write_panel(df, tmp_path / "p.json")


def test_write_panel_parts_keep_loans_whole(tmp_path):
    df = sim(loans_per_cohort=10)
    paths = write_panel(df, str(tmp_path / "bench-{part}.parquet"), parts=4)
    assert [p.name for p in paths] == [f"bench-{i:05d}.parquet" for i in range(4)]
    frames = [pd.read_parquet(p) for p in paths]
    assert all(len(f) for f in frames)
    ids = [set(f[CFG["loan_id"]]) for f in frames]
    assert sum(len(s) for s in ids) == len(set().union(*ids))
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), df)
    in_dir = write_panel(df, tmp_path / "dataset.parquet", parts=2)
    assert [p.relative_to(tmp_path).as_posix() for p in in_dir] == [
        "dataset.parquet/part-00000.parquet", "dataset.parquet/part-00001.parquet"]


def test_iter_panel_parts_is_one_consistent_panel(tmp_path):
    kw = dict(cohorts=["2024-01", "2024-07"], as_of="2024-12", segments=["CASH LOAN", "CD"], seed=4)
    parts = iter_panel_parts(known_matrix(), parts=3, loans_per_cohort={"CASH LOAN": 10, "CD": 7}, **kw)
    paths = write_panel(parts, tmp_path / "x-{part}.parquet")
    assert len(paths) == 3
    whole = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    per_seg = whole.groupby(CFG["segment"])[CFG["loan_id"]].nunique()
    assert per_seg.to_dict() == {"CASH LOAN": 20, "CD": 14}
    assert len(whole) == (10 + 7) * (12 + 6)
    cd_loans = whole.loc[(whole[CFG["mob"]] == 0) & (whole[CFG["segment"]] == "CD"), CFG["loan_id"]]
    assert sorted(cd_loans.str.slice(-6).astype(int)) == sorted([*range(1, 8)] * 2)  # one per cohort
