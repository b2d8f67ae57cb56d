"""`make bench-rebalance`: what a replica joining, leaving or restarting costs a steady stream.

    python -m bench.rebalance [--rate 30] [--partitions 8] [--observe 25] [--model DIR] [--variant auto]

Two real `spanstream worker` processes, each pinned to one core (replica A on core 0, B on core 1;
the broker and this harness unpinned), one consumer group, an 8-partition input topic. An open-loop
producer offers ``--rate`` tweet-length events/s the whole time, each stamped with its scheduled
send time; a reader follows the output and dead-letter topics. While the stream flows:

- **dynamic group** (no ``group_instance_id``, the default): B **joins** A; B **leaves** (SIGTERM:
  drain, commit, leave group); B **restarts** (SIGTERM, then a new B at once, as a StatefulSet
  rolls a pod).
- **static group** (``group_instance_id`` per replica, what the chart sets from the pod name): B
  restarts the same way, within the session timeout.

Per action, over the ``--observe`` seconds after it: how long the action itself took (a joining
replica: process start to holding partitions, model load included; a leaving one: SIGTERM to
exit), when the group was next seen Stable with every member holding partitions after it (the
coordinator, polled every 0.25 s) and the states it went through, how many rebalances A
went through (its ``/readyz``), the output rate in 1-second bins (lowest bin; seconds with less
than half the offered rate), the latency (output record timestamp − scheduled input time) of the
events offered in the window (p50 / p99 / max) against the steady state before the first action,
and events seen twice (replays) or never (losses, counted at the end).

Uses ``KAFKA_BOOTSTRAP`` when set; otherwise starts a single-node broker from the Maven jars.
Writes bench/out/rebalance.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import orjson

from bench.latency import Harness, percentiles
from bench.scale import _topics, _wait_group, tweets
from bench.worker import LABELS, _broker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class Replica:
    """One `spanstream worker` process pinned to a core; restarts get a new process and HTTP port."""

    def __init__(self, name: str, core: int, config: Path, bootstrap: str, group: str, workdir: Path,
                 args, static: bool):
        self.name, self.core, self.config, self.bootstrap, self.group = name, core, config, bootstrap, group
        self.workdir, self.args, self.static = workdir, args, static
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> None:
        from devtools.localkafka import free_port

        self.port, self.starts = free_port(), self.starts + 1
        cmd = ["taskset", "-c", str(self.core), sys.executable, "-m", "stream", "worker", "--config",
               str(self.config), "--bootstrap", self.bootstrap, "--group-id", self.group, "--http-port",
               str(self.port), "--data-dir", str(self.workdir / f"data-{self.name}-{self.starts}"),
               "--loglevel", "warning", "--variant", self.args.variant]
        if self.args.model:
            cmd += ["--model", str(self.args.model)]
        env = dict(os.environ)
        if self.static:
            env["SPANSTREAM_GROUP_INSTANCE_ID"] = f"replica-{self.name}"
        log = open(self.workdir / f"worker-{self.group}-{self.name}-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)

    def readyz(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return {}

    def stop(self) -> int:
        """SIGTERM (drain, commit, leave) and wait for the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Stream(Harness):
    """Open-loop producer at a constant rate, and a reader of the outputs (copies per id)."""

    def __init__(self, bootstrap: str, inp: str, outs: list[str], rate: float, prefix: str):
        super().__init__(bootstrap, inp, outs)
        self.rate, self.prefix = rate, prefix
        self.seen: dict[str, list[float]] = {}
        self.partition: dict[str, int] = {}

    async def start(self) -> None:
        await super().start()
        self._producing = asyncio.get_running_loop().create_task(self._produce())

    async def _read(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    i = str(orjson.loads(r.value).get("id", ""))
                    self.seen.setdefault(i, []).append(r.timestamp / 1000)
                    self.partition[i] = r.partition

    async def _produce(self) -> None:
        texts, start, k = tweets(64), time.time() + 0.1, 0
        while True:
            at = start + k / self.rate
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            i = f"{self.prefix}-{k}"
            self.sent[i] = at
            await self.producer.send(self.inp, orjson.dumps({**texts[k % len(texts)], "id": i}), key=i.encode(),
                                     timestamp_ms=int(at * 1000))
            k += 1

    async def stop(self, timeout: float = 120) -> None:
        """Stop offering; wait until every offered event has an output (or the timeout)."""
        self._producing.cancel()
        await self.producer.flush()
        deadline = time.monotonic() + timeout
        while any(i not in self.seen for i in self.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await super().stop()

    def window(self, start: float, end: float) -> dict:
        """Latency of the events offered in [start, end); output rate per second in it."""
        ids = [i for i, t in self.sent.items() if start <= t < end]
        lat = [1000 * (self.seen[i][0] - self.sent[i]) for i in ids if i in self.seen]
        bins = Counter(int(t - start) for copies in self.seen.values() for t in copies[:1] if start <= t < end)
        per_second = [bins.get(s, 0) for s in range(int(end - start))]
        waits: dict[int, float] = {}  # per output partition, the longest an event offered in the window waited
        for i in ids:
            if i in self.seen:
                p = self.partition[i]
                waits[p] = max(waits.get(p, 0.0), self.seen[i][0] - self.sent[i])
        return {"offered": len(ids), **percentiles(lat), "max": max(lat, default=float("nan")),
                "lowest_bin": min(per_second, default=0), "slow_seconds": sum(n < self.rate / 2 for n in per_second),
                "per_second": per_second, "partitions_waiting_over_1s": sorted(p for p, w in waits.items() if w > 1),
                "replayed": sum(len(self.seen.get(i, [])) > 1 for i in ids),
                "missing": sum(i not in self.seen for i in ids)}


class GroupWatch:
    """Polls the coordinator: (time, state, members, every member assigned) every 0.25 s."""

    def __init__(self, bootstrap: str, group: str):
        self.bootstrap, self.group = bootstrap, group
        self.samples: list[tuple[float, str, int, bool]] = []

    async def start(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self.admin.start()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        from aiokafka.errors import KafkaError

        while True:
            try:
                for response in await self.admin.describe_consumer_groups([self.group]):
                    for g in response.groups:
                        self.samples.append((time.time(), g[2], len(g[5]), all(m[-1] for m in g[5])))
            except KafkaError:
                pass
            await asyncio.sleep(0.25)

    def stable_at(self, after: float, members: int) -> float | None:
        """First poll at or after ``after`` that saw the group Stable with ``members`` members, each
        holding partitions."""
        return next((t for t, state, n, assigned in self.samples
                     if t >= after and state == "Stable" and n == members and assigned), None)

    def states_between(self, start: float, end: float) -> list[str]:
        """The group's states in order, repeats folded (``Stable/2``: state / members)."""
        out: list[str] = []
        for t, state, n, _ in self.samples:
            if start <= t < end and (not out or out[-1] != f"{state}/{n}"):
                out.append(f"{state}/{n}")
        return out

    async def stop(self) -> None:
        self._task.cancel()
        await self.admin.close()


async def _until_assigned(replica: Replica, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(replica.readyz)).get("partitions"):
            return
        await asyncio.sleep(0.25)
    raise SystemExit(f"replica {replica.name} held no partitions after {timeout:g}s")


async def scenario(args, bootstrap: str, workdir: Path, static: bool) -> list[dict]:
    inp, out, dlq = await _topics(bootstrap, args.partitions)
    config = workdir / f"pipelines-{'static' if static else 'dynamic'}.toml"
    config.write_text(f'[[pipelines]]\nname = "rebalance"\ninput_topics = ["{inp}"]\noutput_topic = "{out}"\n'
                      f'dead_letter_topic = "{dlq}"\nlabels = {json.dumps(LABELS)}\nthreshold = 0.5\n')
    group = f"rebalance-{uuid.uuid4().hex[:8]}"
    a, b = (Replica(name, core, config, bootstrap, group, workdir, args, static) for name, core in (("a", 0), ("b", 1)))
    stream = Stream(bootstrap, inp, [out, dlq], args.rate, group)
    watch = GroupWatch(bootstrap, group)
    actions: list[dict] = []

    async def act(name: str, members: int, do) -> None:
        before = (await asyncio.to_thread(a.readyz)).get("rebalances", 0)
        started = time.time()
        await do()
        done = time.time()
        stable = watch.stable_at(done, members)
        deadline = time.monotonic() + 120
        while stable is None and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            stable = watch.stable_at(done, members)
        rest = started + args.observe - time.time()
        if rest > 0:
            await asyncio.sleep(rest)
        actions.append({"group": "static" if static else "dynamic", "action": name, "at": started,
                        "done_after_s": done - started,
                        "stable_after_s": None if stable is None else stable - started,
                        "a_rebalances": (await asyncio.to_thread(a.readyz)).get("rebalances", 0) - before,
                        "states": watch.states_between(started, started + args.observe)})
        print(f"  {actions[-1]['group']} {name}: stable after {actions[-1]['stable_after_s']} s, "
              f"A rebalances {actions[-1]['a_rebalances']}, {' > '.join(actions[-1]['states'])}",
              file=sys.stderr, flush=True)

    async def join() -> None:
        b.start()
        await _until_assigned(b)

    async def leave() -> None:
        code = await asyncio.to_thread(b.stop)  # off the loop: the producer and the reader keep going
        if code != 0:
            raise SystemExit(f"replica b exited {code} on SIGTERM")

    async def restart() -> None:
        await leave()
        await join()

    try:
        a.start()
        await _wait_group(bootstrap, group, 1)
        await watch.start()
        if static:
            b.start()
            await _wait_group(bootstrap, group, 2)
        await stream.start()
        await asyncio.sleep(args.settle)
        steady_span = (time.time() - args.settle + 2, time.time())
        if static:
            await act("restart (SIGTERM, new process at once)", 2, restart)
        else:
            await act("join", 2, join)
            await act("leave (SIGTERM)", 1, leave)
            await act("join", 2, join)
            await act("restart (SIGTERM, new process at once)", 2, restart)
        await stream.stop()
    finally:
        b.stop()
        a.stop()
        await watch.stop()
    steady = stream.window(*steady_span)
    for action in actions:
        action.update(stream.window(action["at"], action["at"] + args.observe))
        action["steady"] = {k: steady[k] for k in ("p50", "p99", "max")}
    lost = sum(i not in stream.seen for i in stream.sent)
    replayed = sum(len(v) > 1 for v in stream.seen.values())
    for action in actions:
        action["run_lost"], action["run_replayed"], action["run_offered"] = lost, replayed, len(stream.sent)
    return actions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rebalance", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=30.0, help="events/s offered the whole time (tweet-length)")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--observe", type=float, default=25.0, help="seconds measured after each action")
    p.add_argument("--settle", type=float, default=10.0, help="steady seconds before the first action")
    p.add_argument("--groups", type=lambda v: v.split(","), default=["dynamic", "static"],
                   help="which scenarios: dynamic, static or both (comma-separated)")
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default="auto")
    args = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs to pin two workers")
    with tempfile.TemporaryDirectory(prefix="bench-rebalance-") as tmp:
        workdir = Path(tmp)
        bootstrap, cluster = _broker(workdir)
        try:
            actions = [a for group in args.groups for a in asyncio.run(scenario(args, bootstrap, workdir,
                                                                                 static=group == "static"))]
        finally:
            if cluster is not None:
                cluster.stop()
    result = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True,
                                       text=True).stdout.strip(),
              "rate": args.rate, "partitions": args.partitions, "observe_s": args.observe, "actions": actions}
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "rebalance.json").write_text(json.dumps(result, indent=2))
    print(report(result))
    return 0


def report(result: dict) -> str:
    rate, observe = result["rate"], result["observe_s"]
    lines = [(f"Offered {rate:g} events/s (tweet-length), {result['partitions']} partitions, {observe:g} s observed "
              f"after each action; commit {result['commit']}."), "",
             "| group | action | action took s | group stable after s | group states | A's rebalances | lowest events/s in a second | seconds < half rate "
             "| p50 / p99 / max ms (steady p50 / p99) | partitions where an event waited > 1 s | replayed | missing |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in result["actions"]:
        stable = "–" if x["stable_after_s"] is None else f"{x['stable_after_s']:.1f}"
        lines.append(f"| {x['group']} | {x['action']} | {x['done_after_s']:.1f} | {stable} "
                     f"| {' > '.join(x['states'])} | {x['a_rebalances']} | {x['lowest_bin']} "
                     f"| {x['slow_seconds']} | {x['p50']:.0f} / {x['p99']:.0f} / {x['max']:.0f} "
                     f"({x['steady']['p50']:.0f} / {x['steady']['p99']:.0f}) "
                     f"| {len(x['partitions_waiting_over_1s'])} of {result['partitions']} | {x['replayed']} | {x['missing']} |")
    lines.append("")
    for group in ("dynamic", "static"):
        x = next((x for x in result["actions"] if x["group"] == group), None)
        if x:
            lines.append(f"{group} run: {x['run_offered']} events offered, {x['run_lost']} never output, "
                         f"{x['run_replayed']} output twice.")
    lines.append("")
    lines.append("Outputs per second after each action:")
    for x in result["actions"]:
        lines.append(f"- {x['group']} {x['action']}: {x['per_second']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
