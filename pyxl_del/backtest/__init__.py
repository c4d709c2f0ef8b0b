"""Backtesting: the forecast cut at past as-of months and scored against what happened, beside the benchmarks
(chain-ladder on the DEL curves, the last value carried forward, the uncalibrated chain)."""
