"""Where a one-core worker's CPU goes: from a backlog and under live arrivals.

    python -m bench.worker_cpu [--policy adaptive] [--rates 25,50,90] [--n 2000]

One `spanstream worker` on the embedded model pinned to core 0 (a 1-CPU replica, one inference
thread), the broker (one KRaft node from the Maven jars) and this harness on core 1, an
8-partition topic of tweet-length events (``bench.latency``'s worker, producer and reader). First
a backlog of ``--n`` events, then open-loop constant arrivals at each of ``--rates`` events/s
(``bench.latency``'s ``open_loop``). Around each phase it reads the worker's counters:

- CPU seconds of the worker process and of each of its threads (``/proc/PID/task/TID/stat``) and
  their context switches (``/proc/PID/task/TID/status``), per delivered event;
- from its ``/metrics``: events produced, engine calls and rows (``spanstream_batch_size``),
  padded tokens (``spanstream_batch_tokens``), engine seconds (``spanstream_inference_seconds``).

Threads by role: ``inference`` is the one with the most CPU (the executor thread that runs
onnxruntime), ``event loop`` the process's main thread, and the rest summed as ``other threads``
(faust's consumer thread, the producer's). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.latency import Harness, _spawn_worker
from bench.scale import _topics, _wait_group

TICK = os.sysconf("SC_CLK_TCK")
COUNTERS = ("spanstream_batch_size_sum", "spanstream_batch_size_count", "spanstream_batch_tokens_sum",
            "spanstream_inference_seconds_sum", "spanstream_events_produced_total")


def _threads(pid: int) -> dict[int, tuple[float, int]]:
    """CPU seconds and context switches of each thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except FileNotFoundError:  # the thread ended
            continue
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)
        out[int(tid)] = ((int(fields[11]) + int(fields[12])) / TICK, switches)
    return out


def _core_idle() -> list[tuple[int, int]]:
    rows = [line.split() for line in Path("/proc/stat").read_text().splitlines() if re.match(r"cpu\d", line)]
    return [(sum(map(int, r[1:])), int(r[4]) + int(r[5])) for r in rows]


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = dict.fromkeys(COUNTERS, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


class Snapshot:
    def __init__(self, pid: int, port: int):
        self.at, self.threads, self.cores, self.metrics = time.time(), _threads(pid), _core_idle(), _metrics(port)


def _row(label: str, a: Snapshot, b: Snapshot, pid: int) -> str:
    m = {k: b.metrics[k] - a.metrics[k] for k in COUNTERS}
    events = m["spanstream_events_produced_total"] or 1
    threads = {t: (b.threads[t][0] - a.threads.get(t, (0, 0))[0], b.threads[t][1] - a.threads.get(t, (0, 0))[1])
               for t in b.threads}
    inference = max(threads, key=lambda t: threads[t][0])
    named = {"inference": threads.pop(inference), "event loop": threads.pop(pid, (0.0, 0))}
    others = sum(cpu for cpu, _ in threads.values()), sum(cs for _, cs in threads.values())
    busy = [1 - (bi - ai) / max(bt - at, 1) for (at, ai), (bt, bi) in zip(a.cores, b.cores)]
    calls, rows = m["spanstream_batch_size_count"], m["spanstream_batch_size_sum"]
    cpu = sum(c for c, _ in named.values()) + others[0]

    def cell(cpu_s: float, switches: int) -> str:
        return f"{1000 * cpu_s / events:.2f} ({switches / events:.1f})"

    return (f"| {label} | {events / (b.at - a.at):.1f} | {1000 * cpu / events:.2f} | "
            f"{cell(*named['inference'])} | {cell(*named['event loop'])} | {cell(*others)} | "
            f"{1000 * m['spanstream_inference_seconds_sum'] / events:.2f} | {rows / max(calls, 1):.1f} | "
            f"{1e6 * m['spanstream_inference_seconds_sum'] / max(m['spanstream_batch_tokens_sum'], 1):.0f} | "
            f"{busy[0]:.2f} / {busy[1]:.2f} |")


async def _run(bootstrap: str, workdir: Path, args) -> list[str]:
    inp, out, dlq = await _topics(bootstrap, 8)
    group, worker = _spawn_worker(argparse.Namespace(model=None, variant="auto"), args.policy, bootstrap, inp, out,
                                  dlq, workdir)
    h = Harness(bootstrap, inp, [out, dlq])
    rows = []
    try:
        await _wait_group(bootstrap, group, 1)
        await h.start()
        argv = Path(f"/proc/{worker.pid}/cmdline").read_text().split("\0")
        port = int(argv[argv.index("--http-port") + 1])
        await h.backlog("warm", 300, 300)
        a = Snapshot(worker.pid, port)
        rate = await h.backlog("backlog", args.n, 600)
        rows.append(_row(f"backlog of {args.n} ({rate:.1f}/s, 10th–90th pct)", a, Snapshot(worker.pid, port),
                         worker.pid))
        for r in args.rates:
            await asyncio.sleep(1.0)
            a = Snapshot(worker.pid, port)
            point = await h.open_loop(f"live-{r:g}", r, "constant", 5.0, 6, seed=7)
            rows.append(_row(f"live {r:g}/s (p50 {point['p50']:.0f} ms)", a, Snapshot(worker.pid, port), worker.pid))
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        await h.stop()
        worker.terminate()
        worker.wait(60)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker_cpu", description=__doc__.split("\n")[0])
    p.add_argument("--policy", default="adaptive", help="a bench.latency policy")
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[25.0, 50.0, 90.0])
    p.add_argument("--n", type=int, default=2000, help="backlog events")
    args = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs: the worker on one, broker and harness on the other")
    from devtools.localkafka import KafkaCluster

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-worker-cpu-") as tmp:
        cluster = KafkaCluster.create(Path(tmp) / "kafka", size=1)
        cluster.start()
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(cluster.nodes[0].process.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        os.sched_setaffinity(0, {1})
        try:
            rows = asyncio.run(_run(cluster.bootstrap, Path(tmp), args))
        finally:
            cluster.stop()
    print(f"Code of {commit}, policy {args.policy}. Per delivered event: CPU ms (context switches).\n")
    print("| phase | events/s | worker CPU ms | inference thread | event loop thread | other threads | "
          "engine call ms | rows per call | engine ms per 1k padded tokens | core 0 / core 1 busy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
