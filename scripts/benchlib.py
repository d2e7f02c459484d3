"""Small helpers the benchmark scripts share."""


def quantile(values: list[float], q: float) -> float:
    """The `q` quantile of `values` (nearest rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
