"""Run a real Apache Kafka broker (KRaft) from Maven Central jars, without Docker.

Used by ``make run``/``make kafka-up`` and by the test fixtures. One node runs in combined
broker+controller mode; three nodes form a static-quorum cluster on loopback for fault tests.
Jars come from ``kafka/pom.xml`` (``mvn dependency:copy-dependencies``) and are reused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KafkaCluster", "KafkaNode", "ensure_jars", "free_port", "wait_for_metadata"]

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DIR = REPO_ROOT / "kafka"
LIBS_DIR = KAFKA_DIR / "libs"

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""

_JVM_OPTS = [
    "-Xmx512m", "-Xms256m", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true", "-XX:TieredStopAtLevel=1",
]


def ensure_jars(libs_dir: Path = LIBS_DIR) -> Path:
    """Fetch the broker classpath with Maven unless it is already there; return the folder."""
    if libs_dir.is_dir() and any(libs_dir.glob("kafka_2.13-*.jar")):
        return libs_dir
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn not found: Maven is needed to fetch the Kafka broker jars")
    cmd = ["mvn", "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={libs_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not any(libs_dir.glob("kafka_2.13-*.jar")):
        raise RuntimeError(f"fetching Kafka jars failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return libs_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _metadata_brokers(bootstrap: str, timeout: float) -> int:
    import logging

    from aiokafka import AIOKafkaClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # refused connects while booting
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        return len(client.cluster.brokers())
    finally:
        await client.close()


def _run_blocking(coro):
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_for_metadata(bootstrap: str, brokers: int = 1, timeout: float = 90.0,
                      alive: callable | None = None) -> None:
    """Block until a real metadata request lists ``brokers`` brokers (or raise TimeoutError)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"Kafka process exited before {bootstrap} became ready")
        try:
            if _run_blocking(_metadata_brokers(bootstrap, 5.0)) >= brokers:
                return
        except Exception as exc:  # not up yet: connection refused, timeout, no leader
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s (last error: {last!r})")


@dataclass
class KafkaNode:
    """One broker+controller JVM: its id, ports, folder and process."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    process: subprocess.Popen | None = None
    listeners: dict[str, tuple[int, str]] = field(default_factory=dict)
    "Extra client listeners: name → (port, security protocol), e.g. SASL_SSL or SSL."
    extra_properties: list[str] = field(default_factory=list)
    "server.properties lines for them (TLS keystore, SASL mechanisms, client auth)."

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self, voters: str, replication: int) -> str:
        min_isr = 2 if replication >= 3 else 1
        extra = "".join(f",{name}://127.0.0.1:{port}" for name, (port, _) in self.listeners.items())
        protocols = "".join(f",{name}:{protocol}" for name, (_, protocol) in self.listeners.items())
        return "\n".join([
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}{extra}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}{extra}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{protocols}",
            *self.extra_properties,
            f"log.dirs={self.data_dir / 'logs'}",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=4",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            "transaction.state.log.num.partitions=4",
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "num.network.threads=2",
            "num.io.threads=2",
            "num.partitions=1",
            "auto.create.topics.enable=true",
            "log.retention.hours=24",
            "",
        ])

    def is_running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        pid = self._read_pid()
        return pid is not None and _pid_alive(pid)

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, libs_dir: Path) -> None:
        if self.is_running():
            return
        for port in (self.port, self.controller_port):
            if _port_in_use(port):
                raise RuntimeError(f"port {port} is already in use (another broker?): stop it, choose another "
                                   "port (KAFKA_PORT=...), or point at it with KAFKA_BOOTSTRAP")
        log_dir = self.data_dir / "server-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        cmd = ["java", *_JVM_OPTS, f"-Dkafka.logs.dir={log_dir}",
               f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
               "-cp", f"{libs_dir}/*", "kafka.Kafka", str(self.data_dir / "server.properties")]
        out = open(log_dir / "stdout.log", "ab")
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.pid_file.write_text(str(self.process.pid))

    def signal(self, sig: int) -> None:
        pid = self.process.pid if self.process is not None else self._read_pid()
        if pid is not None and _pid_alive(pid):
            os.kill(pid, sig)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL if it lingers."""
        self.signal(signal.SIGTERM)
        if not self._wait_exit(timeout):
            self.kill()
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: a crash, as a fault test wants it."""
        self.signal(signal.SIGKILL)
        self._wait_exit(10.0)
        self.pid_file.unlink(missing_ok=True)

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None:
                if self.process.poll() is not None:
                    return True
            elif not self.is_running():
                return True
            time.sleep(0.1)
        return False


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


@dataclass
class KafkaCluster:
    """One or three KRaft nodes on loopback, sharing one cluster id."""

    base_dir: Path
    nodes: list[KafkaNode] = field(default_factory=list)
    libs_dir: Path = LIBS_DIR
    format_args: list[str] = field(default_factory=list)
    "Extra ``kafka-storage format`` arguments, e.g. ``--add-scram`` users."

    @classmethod
    def create(cls, base_dir: Path, size: int = 1, ports: list[tuple[int, int]] | None = None,
               libs_dir: Path = LIBS_DIR, format_args: list[str] | None = None) -> "KafkaCluster":
        if size not in (1, 3):
            raise ValueError("a local cluster has 1 or 3 nodes")
        ports = ports or [(free_port(), free_port()) for _ in range(size)]
        nodes = [KafkaNode(i + 1, p, c, Path(base_dir) / f"node{i + 1}") for i, (p, c) in enumerate(ports)]
        return cls(Path(base_dir), nodes, libs_dir, list(format_args or []))

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def _format(self) -> None:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replication = 3 if len(self.nodes) == 3 else 1
        id_file = self.base_dir / "cluster.id"
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not id_file.exists():
            id_file.write_text(_random_cluster_id())
        cluster_id = id_file.read_text().strip()
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            (node.data_dir / "server.properties").write_text(node.properties(voters, replication))
            (node.data_dir / "log4j2.properties").write_text(_LOG4J2)
            if (node.data_dir / "logs" / "meta.properties").exists():
                continue
            cmd = ["java", "-cp", f"{self.libs_dir}/*", "kafka.tools.StorageTool", "format",
                   f"--cluster-id={cluster_id}", "-c", str(node.data_dir / "server.properties"), "-g",
                   *self.format_args]
            if len(self.nodes) == 3:  # classic min-ISR semantics (KIP-966 off) for fault tests
                cmd += ["--feature", "eligible.leader.replicas.version=0"]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "KAFKA_LOG4J_OPTS": ""})
            if proc.returncode != 0:
                raise RuntimeError(f"kafka storage format failed for node {node.node_id}:\n"
                                   f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")

    def start(self, timeout: float = 120.0) -> "KafkaCluster":
        ensure_jars(self.libs_dir)
        self._format()
        for node in self.nodes:
            node.start(self.libs_dir)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        running = [n for n in self.nodes if n.is_running()]
        wait_for_metadata(",".join(n.bootstrap for n in running), brokers=len(running),
                          timeout=timeout, alive=lambda: all(n.is_running() for n in running))

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def kill_node(self, node_id: int) -> None:
        self.node(node_id).kill()

    def stop_node(self, node_id: int) -> None:
        self.node(node_id).stop()

    def restart_node(self, node_id: int, timeout: float = 120.0) -> None:
        node = self.node(node_id)
        if node.is_running():
            node.stop()
        node.process = None
        node.start(self.libs_dir)
        wait_for_metadata(node.bootstrap, brokers=1, timeout=timeout, alive=node.is_running)

    def stop(self) -> None:
        for node in self.nodes:
            node.signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for node in self.nodes:
            path = node.data_dir / "server-logs" / "server.log"
            if path.exists():
                out.append(f"--- node {node.node_id} ---")
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)


def _random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).

    Like Kafka's own ``Uuid.randomUuid``, never one starting with '-': command-line parsers
    would read it as an option.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
