"""AWS call rates as the sandbox's endpoint sees them, per quota bucket, against the quota.

A thread samples the sandbox's server-side call counts (every process's calls) every 0.1 s. Each
call is placed in its sample's interval; the peak is the most calls in any 1-s window, per bucket
(the bucket a call draws on, as AWS groups actions: ``ecs_sandbox.quotas.bucket_of``). Printed next
to the sustained rate and burst the quota allows: a token bucket lets at most ``burst + rate`` calls
through in one second, and ``rate`` on average over a long run.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict

from ecs_sandbox import Sandbox
from ecs_sandbox.quotas import bucket_of

SAMPLE_SECONDS = 0.1


class CallRates:
    """Samples the sandbox's call counts until stopped; reports per-bucket peaks and means."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._samples: list[tuple[float, dict[tuple[str, str], int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CallRates:
        self._samples.append((time.monotonic(), self._sandbox.moto.api_calls()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._samples.append((time.monotonic(), self._sandbox.moto.api_calls()))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._samples.append((time.monotonic(), self._sandbox.moto.api_calls()))

    def span(self) -> float:
        """Return the seconds sampled."""
        return max(1e-9, self._samples[-1][0] - self._samples[0][0]) if self._samples else 1e-9

    def by_bucket(self) -> dict[str, tuple[int, float, float]]:
        """Return bucket -> (calls, peak calls in a 1-s window, mean calls per second)."""
        per_sample: dict[str, list[tuple[float, int]]] = defaultdict(list)
        totals: Counter[str] = Counter()
        for (_, before), (at, after) in zip(self._samples, self._samples[1:], strict=False):
            for key, count in after.items():
                delta = count - before.get(key, 0)
                if delta <= 0:
                    continue
                found = bucket_of(*key)
                name = found[0] if found else f"{key[0]}:{key[1]}"
                per_sample[name].append((at, delta))
                totals[name] += delta
        span = self.span()
        report: dict[str, tuple[int, float, float]] = {}
        for name, points in per_sample.items():
            peak, start, window = 0, 0, 0
            for end in range(len(points)):
                window += points[end][1]
                while points[end][0] - points[start][0] >= 1.0:
                    window -= points[start][1]
                    start += 1
                peak = max(peak, window)
            report[name] = (totals[name], float(peak), totals[name] / span)
        return report


def quota_of(bucket: str, share: float) -> tuple[float, float] | None:
    """Return the (sustained per second, burst) the fleet may use of a bucket, or None when untabled."""
    service, _, group = bucket.partition(":")
    probe = {
        "ecs": ("ecs", _FIRST_ACTION.get(group, "")),
        "elb": ("elasticloadbalancing", _ELB.get(group, "")),
    }
    found = bucket_of(*probe[service]) if service in probe else None
    if found is None:
        return None
    return found[1].per_second * share, found[1].burst * share


_FIRST_ACTION = {
    "cluster_read": "DescribeClusters",
    "service_read": "DescribeServices",
    "task_read": "DescribeTasks",
    "task_definition_read": "DescribeTaskDefinition",
    "task_definition_write": "RegisterTaskDefinition",
    "service_write": "UpdateService",
    "other": "TagResource",
}
_ELB = {"describe": "DescribeTargetHealth", "registration": "RegisterTargets", "mutating": "ModifyListener"}


def format_rates(
    rates: CallRates,
    share: float,
    overrides: dict[str, tuple[float, float]],
    own: dict[str, int] | None = None,
) -> list[str]:
    """Return one line per bucket: calls, peak/s and mean/s against the quota the fleet may use.

    ``own``: calls per bucket that the benchmark itself made (its probe), which no worker's limiter
    saw: they are printed but left out of the verdict. "ok" when the workers' peak 1-s window stays
    within ``rate + burst`` and their total within ``burst + rate * span`` (what a token bucket lets
    through), "OVER" otherwise.
    """
    lines = []
    span = rates.span()
    for name, (calls, peak, mean) in sorted(rates.by_bucket().items(), key=lambda item: -item[1][0]):
        quota = overrides.get(name) or quota_of(name, share)
        mine = (own or {}).get(name, 0)
        if quota is None:
            limit, verdict = "no quota table", ""
        else:
            rate, burst = quota
            limit = f"quota {rate:g}/s burst {burst:g}"
            # The probe is evenly spread: at most its mean rate, rounded up, plus one in any 1-s window.
            peak_workers = peak - min(mine, math.ceil(mine / span) + 1)
            within = peak_workers <= rate + burst and calls - mine <= burst + rate * span
            verdict = "ok" if within else "OVER"
        lines.append(
            f"    {name:28s} {calls:6d} calls  peak {peak:5.0f}/s  mean {mean:7.2f}/s  {limit:24s} {verdict}"
        )
    return lines


def most_used_quota(
    rates: CallRates, share: float, overrides: dict[str, tuple[float, float]], own: dict[str, int]
) -> tuple[str, float, float, float] | None:
    """Return the bucket whose token bucket the workers used most of over the run: (name, share
    used, its sustained rate, the workers' mean rate); None when no bucket has a quota.

    A token bucket lets ``burst + rate * span`` calls through in ``span`` seconds; a share near 1
    means the fleet's limiter, not the worker or the sandbox, set the pace.
    """
    span, best = rates.span(), None
    for name, (calls, _peak, _mean) in rates.by_bucket().items():
        quota = overrides.get(name) or quota_of(name, share)
        if quota is None:
            continue
        rate, burst = quota
        workers = calls - own.get(name, 0)
        used = workers / (burst + rate * span)
        if best is None or used > best[1]:
            best = (name, used, rate, workers / span)
    return best
