"""Percentiles and the shape every latency figure takes in the results (milliseconds)."""

import math


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an unsorted list."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(seconds: list[float]) -> dict:
    """n, p50/p95/p99, mean and max of durations given in seconds, reported in milliseconds."""
    if not seconds:
        return {"n": 0}
    ms = [value * 1000 for value in seconds]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 1),
        "p95": round(percentile(ms, 95), 1),
        "p99": round(percentile(ms, 99), 1),
        "mean": round(sum(ms) / len(ms), 1),
        "min": round(min(ms), 1),
        "max": round(max(ms), 1),
    }
