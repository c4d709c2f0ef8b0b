"""Data sets: the synthetic sample panel (and its simulator) and readers of public loan-level data."""
