"""A few Prometheus metrics in the text exposition format, without a client library.

Counters, gauges and histograms with labels; thread-safe; rendered by `render()` for GET /metrics.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(names: tuple, values: tuple, extra: str = "") -> str:
    parts = [f'{n}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
             for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: tuple = ()):
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._values: dict[tuple, float] = {}

    def inc(self, *labels, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {v:g}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, *labels) -> None:
        with self._lock:
            self._values[labels] = float(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name, help, labels=(), buckets=LATENCY_BUCKETS):
        super().__init__(name, help, labels)
        self.buckets = tuple(buckets)
        self._data: dict[tuple, list] = {}

    def observe(self, value: float, *labels) -> None:
        with self._lock:
            d = self._data.setdefault(labels, [[0] * len(self.buckets), 0, 0.0])
            i = bisect_left(self.buckets, value)
            if i < len(self.buckets):
                d[0][i] += 1
            d[1] += 1
            d[2] += value

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, (list(v[0]), v[1], v[2])) for k, v in self._data.items())
        for labels, (counts, total, s) in items:
            cum = 0
            for b, c in zip(self.buckets, counts):
                cum += c
                le = _labels(self.label_names, labels, 'le="%g"' % b)
                lines.append(f"{self.name}_bucket{le} {cum}")
            le = _labels(self.label_names, labels, 'le="+Inf"')
            lines.append(f"{self.name}_bucket{le} {total}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {s:.6f}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {total}")
        return lines


class Registry:
    def __init__(self):
        self.requests = Counter("impasto_requests_total", "HTTP requests by route, method and status",
                                ("route", "method", "status"))
        self.latency = Histogram("impasto_request_duration_seconds", "HTTP request latency",
                                 ("route",))
        self.errors = Counter("impasto_errors_total", "Requests answered with an error, by status",
                              ("route", "status"))
        self.inference = Histogram("impasto_inference_seconds", "Time spent running the network",
                                   ("style",))
        self.queue_depth = Gauge("impasto_queue_depth", "Stylise requests waiting for a worker")
        self.in_flight = Gauge("impasto_in_flight", "Stylise requests being processed")
        self.rejected = Counter("impasto_rejected_total", "Stylise requests refused because the queue was full")
        self.timeouts = Counter("impasto_timeouts_total", "Stylise requests that ran past the time limit")

    def render(self) -> str:
        lines: list[str] = []
        for m in (self.requests, self.latency, self.errors, self.inference, self.queue_depth,
                  self.in_flight, self.rejected, self.timeouts):
            lines += m.render()
        return "\n".join(lines) + "\n"
