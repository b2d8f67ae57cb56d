"""What one replica of this model does on this machine, and how many a target rate needs.

``measure_throughput`` keeps the inference queue (the one batching path a worker uses) full with
requests the size a worker feeds and counts texts done per wall second and per CPU second of the
process; ``measure_latency`` offers single-text requests with Poisson arrivals at a fixed rate
(open loop: arrivals do not wait for answers) and reports the time each spent from arrival to
result. ``plan`` is pure arithmetic over a measured rate.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from stream.serving.queue import InferenceQueue

__all__ = ["Latency", "Plan", "Throughput", "measure_latency", "measure_throughput", "percentile", "plan"]

WORKER_EFFICIENCY = 0.87
"A worker through Kafka delivered this share of the raw engine's rate on the same texts and threads " \
    "(bench/WORKER.md); the planning default, overridable."


@dataclass(frozen=True)
class Throughput:
    texts: int
    seconds: float
    cpu_seconds: float
    threads: int
    failed: int

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds

    @property
    def cpu_ms_per_text(self) -> float:
        return 1000 * self.cpu_seconds / self.texts


@dataclass(frozen=True)
class Latency:
    offered_per_s: float
    texts: int
    p50_s: float
    p95_s: float
    p99_s: float


@dataclass(frozen=True)
class Plan:
    target_per_s: float
    replica_per_s: float
    "A replica's planned rate: measured rate × worker efficiency × utilisation."
    replicas: int
    cpu_per_replica: int
    partitions: int
    "At least one per replica (a consumer group gives each partition to one member)."


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by the nearest-rank method."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def plan(target_per_s: float, measured_per_s: float, cpu_per_replica: int, *,
         worker_efficiency: float = WORKER_EFFICIENCY, utilisation: float = 0.8) -> Plan:
    """Replicas for ``target_per_s`` events/s when one replica (``cpu_per_replica`` cores, the
    threads it was measured with) ran the engine at ``measured_per_s``: each is planned at
    ``utilisation`` of what it delivers through Kafka, so latency stays near the idle one."""
    if target_per_s <= 0:
        raise ValueError("target rate must be positive")
    if measured_per_s <= 0:
        raise ValueError("measured rate must be positive")
    if not 0 < worker_efficiency <= 1 or not 0 < utilisation <= 1:
        raise ValueError("worker efficiency and utilisation are fractions in (0, 1]")
    per_replica = measured_per_s * worker_efficiency * utilisation
    replicas = max(1, math.ceil(target_per_s / per_replica))
    return Plan(target_per_s, per_replica, replicas, cpu_per_replica, replicas)


async def measure_throughput(queue: InferenceQueue, texts: list[str], labels: list[Any], params: list[Any], *,
                             seconds: float, request_texts: int = 32, in_flight: int = 4,
                             threads: int = 1) -> Throughput:
    """Texts done while ``in_flight`` requests of ``request_texts`` texts each (cycling through
    ``texts``) are kept queued, for about ``seconds``; one round of the texts first as warm-up."""
    await queue.submit(texts[:request_texts], labels[:request_texts], params[:request_texts])
    done = failed = 0
    cursor = 0
    stop_at = time.monotonic() + seconds

    def next_request() -> tuple[list[str], list[Any], list[Any]]:
        nonlocal cursor
        idx = [(cursor + k) % len(texts) for k in range(request_texts)]
        cursor = (cursor + request_texts) % len(texts)
        return [texts[i] for i in idx], [labels[i] for i in idx], [params[i] for i in idx]

    async def client() -> None:
        nonlocal done, failed
        while time.monotonic() < stop_at:
            outcomes = await queue.submit(*next_request())
            done += len(outcomes)
            failed += sum(o.error is not None for o in outcomes)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(in_flight)))
    return Throughput(done, time.perf_counter() - wall, time.process_time() - cpu, threads, failed)


async def measure_latency(queue: InferenceQueue, texts: list[str], labels: list[Any], params: list[Any], *,
                          rate: float, seconds: float, min_texts: int = 0, seed: int = 0) -> Latency:
    """Single-text requests arriving as a Poisson process at ``rate`` per second for ``seconds``, or
    longer until ``min_texts`` have arrived (a p99 needs a hundred or so); each one's time from its
    scheduled arrival to its result (a late arrival counts its delay)."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds and len(arrivals) >= min_texts:
            break
        arrivals.append(t)
    times: list[float] = []

    async def one(i: int, at: float) -> None:
        k = i % len(texts)
        await queue.submit([texts[k]], [labels[k]], [params[k]])
        times.append(loop.time() - (start + at))

    tasks = []
    for i, at in enumerate(arrivals):
        delay = start + at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    return Latency(rate, len(times), percentile(times, 50), percentile(times, 95), percentile(times, 99))
