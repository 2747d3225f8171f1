"""A histogram's counts, as a process's hot path keeps them: a bisect and two adds an
observation, no lock (each process's metrics have one writer: see gateway.py and stage.py), handed
to prometheus_client's `HistogramMetricFamily` when a scrape asks."""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

__all__ = ["Buckets"]


class Buckets:
    """Observations in fixed buckets (the last: above every bound), and their sum."""

    __slots__ = ("bounds", "counts", "les", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        # Each bound as prometheus_client writes it ("le"), and "+Inf" above them all.
        self.les = [floatToGoString(bound) for bound in (*bounds, float("inf"))]  # type: ignore[no-untyped-call]
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def add_to(self, family: HistogramMetricFamily, labels: list[str]) -> None:
        # Copied first: a scrape on another thread than the writer's sees one moment's counts.
        counts, total = list(self.counts), self.total
        cumulative, running = [], 0
        for le, count in zip(self.les, counts, strict=True):
            running += count
            cumulative.append((le, running))
        family.add_metric(labels, cumulative, total)
