"""Reading a Prometheus histogram back from the text of `GET /metrics`: its quantiles, estimated
within the buckets as PromQL's histogram_quantile does."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def quantile(metrics_text: str, name: str, fraction: float) -> float:
    """The `fraction` quantile of histogram `name`: the bucket it falls in, interpolated
    linearly between that bucket's bounds (NaN when nothing was observed)."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics_text):
        if family.name == name:
            for sample in family.samples:
                if sample.name == f"{name}_bucket":
                    buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return float("nan")
    rank = fraction * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (upper - lower) * share
        lower, below = upper, count
    return lower
