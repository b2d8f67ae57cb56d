"""All configuration in one place, validated at start-up.

- Process settings come from ``SPANSTREAM_*`` environment variables (and CLI flags that
  override them): Kafka connection, consumer group, model, HTTP.
- Pipelines come from a TOML file (``--config`` or ``SPANSTREAM_CONFIG``), one
  ``[[pipelines]]`` table each. An error names the offending key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import tomllib
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stream.engine.batching import (
    DEFAULT_LOOKAHEAD,
    DEFAULT_MAX_ROWS,
    DEFAULT_MAX_TOKENS,
)
from stream.errors import ConfigError


class PipelineConfig(BaseModel):
    """One input → output flow. Batching knobs trade latency for throughput."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    input_topics: list[str] = Field(min_length=1)
    output_topic: str
    dead_letter_topic: str
    labels: list[str] = Field(default_factory=list, description="default entity types (span models; on a GLiNER2 "
                              "model the schema {entities: labels}); give labels or schema")
    extraction_schema: dict | None = Field(None, alias="schema", description="GLiNER2 models: gliner2's schema dict "
                                           "(TOML table, or a path to a JSON file, relative to the TOML file); "
                                           "outputs are extraction events (schemas/extraction-event.v1.json)")
    include_confidence: bool = Field(True, description="schema pipelines: confidences in the extraction event")
    include_spans: bool = Field(True, description="schema pipelines: character offsets in the extraction event")
    overlap_policy: str | None = Field(None, description="schema pipelines: gliner2's overlap_policy")
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    label_thresholds: dict[str, float] = Field(default_factory=dict)
    flat_ner: bool = True
    multi_label: bool = False
    input_format: Literal["json", "text"] = "json"
    allow_label_override: bool = True
    max_events: int = Field(64, ge=1, le=4096, description="records taken from the stream at once (feeding "
                            "granularity; the inference queue decides batches)")
    max_wait_ms: int = Field(5, ge=1, le=60_000, description="longest wait to fill a take (records then wait in "
                             "the inference queue, which batches them; bench/LATENCY.md: 50 ms cost 30-45 ms of "
                             "p50 at light load)")
    max_labels: int = Field(50, ge=1, le=1000)
    max_text_chars: int = Field(200_000, ge=1)
    max_record_bytes: int = Field(1_048_576, ge=1)
    model: str | None = Field(None, description="model folder; default: the process's model")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        if any(not x.strip() for x in v):
            raise ValueError("labels must be non-empty strings")
        return list(dict.fromkeys(v))

    @field_validator("extraction_schema", mode="before")
    @classmethod
    def _schema(cls, v):
        if isinstance(v, (str, Path)):
            try:
                v = json.loads(Path(v).read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read the schema file {v}: {exc}") from None
        if v is not None:
            from stream.engine.gliner2.schema import parse_schema
            from stream.errors import InvalidInput
            try:
                parse_schema(v, "schema")
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return v

    @field_validator("overlap_policy")
    @classmethod
    def _policy(cls, v):
        from stream.engine.gliner2.overlap import normalize_policy
        return normalize_policy(v)

    @field_validator("label_thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        for k, t in v.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold for {k!r} must be within [0, 1]")
        return v

    @model_validator(mode="after")
    def _labels_or_schema(self) -> "PipelineConfig":
        if not self.labels and self.extraction_schema is None:
            raise ValueError("give labels (entity types) or schema (a GLiNER2 schema)")
        return self

    @model_validator(mode="after")
    def _topics(self) -> "PipelineConfig":
        outs = {self.output_topic, self.dead_letter_topic}
        if len(outs) < 2:
            raise ValueError("output_topic and dead_letter_topic must differ")
        if outs & set(self.input_topics):
            raise ValueError("an input topic cannot also be an output or dead-letter topic")
        return self


class Settings(BaseSettings):
    """Process settings; every field is ``SPANSTREAM_<FIELD>`` in the environment (``spanstream
    config`` prints the effective values, secrets masked). Each description says the trade-off."""

    model_config = SettingsConfigDict(env_prefix="SPANSTREAM_", frozen=True, extra="ignore")
    # (extra="ignore" only because pydantic-settings cannot forbid unknown *environment* keys without
    # also refusing unrelated variables; ``unknown_environment`` refuses SPANSTREAM_* typos instead.)

    # Kafka connection and consumer group
    kafka_bootstrap: str = Field(default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                                 description="bootstrap servers, comma-separated (falls back to KAFKA_BOOTSTRAP)")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for SSL / SASL_SSL")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="client private key (PEM) for mutual TLS")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted client key")
    client_id: str = "spanstream"
    group_id: str = Field("spanstream", description="consumer group; every replica uses the same one")
    group_instance_id: str | None = Field(None, description="static membership (e.g. the pod name): restarts "
                                          "within the session timeout cause no rebalance")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    commit_interval_s: float = Field(1.0, gt=0, le=60, description="how often acked offsets are committed: "
                                     "shorter means fewer duplicates after a crash, more commit requests")
    session_timeout_s: float = Field(30.0, ge=6, le=300, description="how soon a dead replica's partitions move; "
                                     "too short and a long batch looks like a dead replica")
    heartbeat_interval_s: float = Field(3.0, gt=0, le=60)
    publish_timeout_s: float = Field(120.0, gt=0, description="how long a retriable publish error is retried "
                                     "before the worker exits uncommitted (restart, redelivery)")
    max_unacked_events: int = Field(1024, ge=1, description="records per pipeline between take and ack: more "
                                    "keeps the engine busier across slow publishes, costs memory and replays "
                                    "more after a crash")
    max_inflight_bytes: int | None = Field(None, ge=1_048_576, description="bytes of record values a worker holds "
                                           "between fetch and ack: half for faust's prefetch buffers, half for the "
                                           "records each pipeline has taken. Default: a quarter of the memory "
                                           "limit (cgroup, else RAM), at most 512 MiB")

    # Model and engine
    model_path: Path | str | None = Field(None, description="model folder or hf://org/name; default: the "
                                          "embedded model")
    model_variant: Literal["auto", "fp32", "int8"] = "auto"
    model_version: str = "1"
    inference_threads: int | None = Field(None, ge=1, description="ORT intra-op threads; default: the CPU quota "
                                          "(more threads than cores only adds contention)")
    cache_dir: Path | None = Field(None, description="where derived graphs are cached; default "
                                   "~/.cache/spanstream (a temp folder when not writable)")

    # The inference queue: the one batching path (streams and HTTP share it)
    max_batch_rows: int = Field(DEFAULT_MAX_ROWS, ge=1, le=4096, description="model rows (texts and windows) "
                                "per engine call; on 2 AVX2 cores 16 beat 32, and bigger calls take longer")
    max_batch_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=256, description="padded tokens per engine call (rows x longest "
                                  "row): bounds a call's memory and time on long texts")
    max_batch_wait_ms: float = Field(5.0, ge=0, le=10_000, description="wait to coalesce more requests when "
                                     "fewer than max_batch_rows are pending: latency for fuller batches")
    batch_policy: Literal["adaptive", "fixed"] = Field("adaptive", description="adaptive: wait max_batch_wait_ms "
                                                       "only when rows arrive fast enough to join the batch (none "
                                                       "when idle); fixed: always (bench/LATENCY.md)")
    lookahead_rows: int = Field(DEFAULT_LOOKAHEAD, ge=1, description="pending rows sorted by length together before they are "
                                "cut into batches: more pads less (faster) but a row can wait for the window")
    max_queue_texts: int = Field(2048, ge=1, description="texts admitted and not done; beyond, HTTP gets 429 and "
                                 "streams pause")
    max_queue_tokens: int = Field(262_144, ge=256, description="real tokens (prompt and windows) admitted and not "
                                  "yet run; beyond, HTTP gets 429 and streams pause: bounds queue wait by work")
    max_queue_wait_s: float = Field(2.0, ge=0, le=600, description="admit no more work than the engine, at its "
                                    "measured tokens/s, runs in this long: beyond, HTTP gets 429 (Retry-After: the "
                                    "time to run what is queued) and streams pause. 0 = bound by max_queue_tokens only")

    # HTTP
    http_auth_token: SecretStr | None = Field(None, description="when set, /v1/extract requires 'Authorization: "
                                              "Bearer <token>' (401 otherwise); probes, /metrics, /v1/models and "
                                              "/openapi.json stay open")
    http_enabled: bool = True
    http_host: str = "0.0.0.0"
    http_port: int = Field(6066, ge=0, le=65535)
    http_max_texts: int = Field(64, ge=1, description="texts per /v1/extract request")
    http_max_chars: int = Field(100_000, ge=1, description="characters per text")
    http_max_labels: int = Field(50, ge=1, description="labels per request")
    http_max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="request body size (after gzip/deflate "
                                     "decoding)")
    http_body_timeout_s: float = Field(30.0, gt=0, le=600, description="how long a request body may take to arrive "
                                       "(slower bodies get 408, so a stalled client cannot hold a connection)")
    http_header_timeout_s: float = Field(10.0, gt=0, le=600, description="how long a new connection may take to send "
                                         "a whole request head (request line and headers); slower ones get 408 and "
                                         "are closed")
    http_keepalive_timeout_s: float = Field(75.0, gt=0, le=3600, description="an idle keep-alive connection is "
                                            "closed after this long (also bounds a later request head on it); keep it "
                                            "above your load balancer's idle timeout")
    drain_timeout_s: float = Field(50.0, gt=0, le=3600, description="the whole time from SIGTERM to exit, for worker "
                                   "and serve: taken records are published and acked, in-flight HTTP requests "
                                   "complete; past it the process exits without committing (Kafka redelivers). "
                                   "Keep it under the orchestrator's grace period (the chart sets grace - 10 s)")
    drain_seconds: float = Field(1.0, ge=0, le=600, description="serve: after SIGTERM, /readyz answers 503 and new "
                                 "requests 503 (a balancer retries them elsewhere) this long before the listener "
                                 "closes; part of drain_timeout_s")

    # The PostgreSQL sink (`spanstream sink`): its own consumer group
    sink_dsn: SecretStr | None = Field(None, description="PostgreSQL connection string (libpq form, e.g. "
                                       "'postgresql://user@host:5432/db?sslmode=verify-full&sslrootcert=/ca.pem'); "
                                       "a secret (SPANSTREAM_SINK_DSN_FILE reads it from a mounted file)")
    sink_topics: Annotated[list[str], NoDecode] = Field(default_factory=list, description="entity-event and extraction-event topics "
                                   "the sink stores (comma-separated or a JSON list)")
    sink_group_id: str = Field("spanstream-sink", description="the sink's consumer group (not the workers')")
    sink_dead_letter_topic: str | None = Field(None, description="where events the sink cannot store go, with the "
                                               "reason (dead-letter.v1); none: the sink stops on such an event rather "
                                               "than skip it")
    sink_batch_rows: int = Field(500, ge=1, le=100_000, description="events per database transaction: larger "
                                 "batches write faster, replay more after a crash (nothing is duplicated)")
    sink_batch_bytes: int = Field(8 * 2**20, ge=1024, description="bytes of events per transaction (bounds memory)")
    sink_linger_ms: int = Field(200, ge=0, le=60_000, description="wait to fill a batch: latency for fewer, "
                                "larger transactions")
    sink_retry_max_s: float = Field(30.0, gt=0, le=600, description="longest pause between attempts while the "
                                    "database is unreachable (the wait doubles from 0.5 s); the sink retries "
                                    "until SIGTERM, consuming nothing meanwhile")

    config: Path | None = Field(None, description="pipelines TOML file")
    data_dir: Path = Field(Path("/tmp/spanstream"), description="faust's data folder (no state is kept there)")

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, values: dict) -> dict:
        """Every secret also reads from a mounted file: ``SPANSTREAM_<FIELD>_FILE`` (trailing newline dropped)."""
        for name in SECRET_FIELDS:
            path = os.environ.get(f"SPANSTREAM_{name.upper()}_FILE")
            if path and not values.get(name) and not os.environ.get(f"SPANSTREAM_{name.upper()}"):
                try:
                    values[name] = Path(path).read_text().rstrip("\r\n")
                except OSError as exc:
                    raise ValueError(f"SPANSTREAM_{name.upper()}_FILE: cannot read {path}: {exc.strerror}") from None
        return values

    @property
    def inflight_bytes(self) -> int:
        """``max_inflight_bytes``, or its default from the pod's memory."""
        if self.max_inflight_bytes is not None:
            return self.max_inflight_bytes
        return max(16 * 2**20, min(512 * 2**20, memory_limit() // 4))

    @model_validator(mode="after")
    def _bounds(self) -> "Settings":
        if self.heartbeat_interval_s * 3 > self.session_timeout_s:
            raise ValueError(f"SPANSTREAM_HEARTBEAT_INTERVAL_S ({self.heartbeat_interval_s:g}) must be at most a third "
                             f"of SPANSTREAM_SESSION_TIMEOUT_S ({self.session_timeout_s:g}), as Kafka advises")
        if self.max_queue_texts < self.max_batch_rows:
            raise ValueError(f"SPANSTREAM_MAX_QUEUE_TEXTS ({self.max_queue_texts}) must be at least "
                             f"SPANSTREAM_MAX_BATCH_ROWS ({self.max_batch_rows}): batches could never fill")
        if self.max_queue_tokens < self.max_batch_tokens:
            raise ValueError(f"SPANSTREAM_MAX_QUEUE_TOKENS ({self.max_queue_tokens}) must be at least "
                             f"SPANSTREAM_MAX_BATCH_TOKENS ({self.max_batch_tokens})")
        return self

    @field_validator("sink_topics", mode="before")
    @classmethod
    def _sink_topics(cls, v):
        if isinstance(v, str):
            v = json.loads(v) if v.lstrip().startswith("[") else [t.strip() for t in v.split(",") if t.strip()]
        return v

    @model_validator(mode="after")
    def _drain(self) -> "Settings":
        if self.drain_seconds >= self.drain_timeout_s:
            raise ValueError(f"SPANSTREAM_DRAIN_SECONDS ({self.drain_seconds:g}) must be less than "
                             f"SPANSTREAM_DRAIN_TIMEOUT_S ({self.drain_timeout_s:g})")
        return self

    @model_validator(mode="after")
    def _sasl(self) -> "Settings":
        if self.kafka_security_protocol.startswith("SASL") and not (self.kafka_sasl_mechanism and
                                                                      self.kafka_sasl_username):
            raise ValueError("SASL needs SPANSTREAM_KAFKA_SASL_MECHANISM and SPANSTREAM_KAFKA_SASL_USERNAME")
        if self.kafka_security_protocol.startswith("SASL") and not self.kafka_sasl_password:
            raise ValueError("SASL needs SPANSTREAM_KAFKA_SASL_PASSWORD (or SPANSTREAM_KAFKA_SASL_PASSWORD_FILE)")
        return self


SECRET_FIELDS = ("kafka_sasl_password", "kafka_ssl_key_password", "http_auth_token", "sink_dsn")


def memory_limit(cgroup_root: str = "/sys/fs/cgroup", membership: str = "/proc/self/cgroup") -> int:
    """Bytes of memory this process may use: the smallest memory limit of its own cgroup and the
    cgroups above it (v2 ``memory.max``, v1 ``memory.limit_in_bytes``), else physical RAM.

    In a container the process's cgroup path is "/" (cgroup namespace) and this reads the mount's
    root files; on a host (a systemd unit with ``MemoryMax``, a nested cgroup) it reads the
    process's own group, which the root files do not describe."""
    limits = []
    for base, group, name in _memory_cgroups(Path(cgroup_root), membership):
        for folder in (base / group, *(base / p for p in group.parents)):  # the group, then each parent
            try:
                raw = (folder / name).read_text().strip()
            except OSError:
                continue
            if raw.isdigit() and int(raw) < 2**60:
                limits.append(int(raw))
    if limits:
        return min(limits)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _memory_cgroups(root: Path, membership: str) -> list[tuple[Path, PurePosixPath, str]]:
    """(hierarchy mount, this process's group in it, limit file) for the v2 and v1 hierarchies."""
    try:
        lines = Path(membership).read_text().splitlines()
    except OSError:
        lines = []
    out = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        group = PurePosixPath(path.lstrip("/") or ".")
        if hierarchy == "0" and controllers == "":  # v2: mounted at the root, or beside v1 as unified/
            base = next((b for b in (root, root / "unified") if (b / "cgroup.controllers").exists()), None)
            if base is not None:
                out.append((base, group, "memory.max"))
        elif "memory" in controllers.split(","):
            out.append((root / "memory", group, "memory.limit_in_bytes"))
    return out or [(root, PurePosixPath("."), "memory.max"), (root / "memory", PurePosixPath("."), "memory.limit_in_bytes")]


def unknown_environment(environ=None) -> list[str]:
    """``SPANSTREAM_*`` variables that name no setting (typos), sorted."""
    environ = os.environ if environ is None else environ
    known = {f"SPANSTREAM_{name.upper()}" for name in Settings.model_fields}
    known |= {f"SPANSTREAM_{name.upper()}_FILE" for name in SECRET_FIELDS}
    known |= EXTRA_ENVIRONMENT
    return sorted(k for k in environ if k.startswith("SPANSTREAM_") and k not in known)


EXTRA_ENVIRONMENT = {"SPANSTREAM_HELM", "SPANSTREAM_TEST_DOCKER", "SPANSTREAM_DEPLOY_DIR"}
"Variables read outside the settings model (test and tooling switches); never refused."


def _format(exc: ValidationError, prefix: str = "", upper: bool = False) -> str:
    lines = []
    for err in exc.errors():
        loc = (prefix + ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])).replace(".[", "[")
        if not err["loc"]:  # a check across fields: its message names the keys (within the table, if any)
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{prefix[:-1]}: {message}" if prefix.endswith(".") else message)
            continue
        lines.append(f"{loc.upper() if upper else loc}: {err['msg']}")
    return "; ".join(lines)


def load_settings(**overrides) -> Settings:
    unknown = unknown_environment()
    if unknown:
        import difflib

        known = [f"SPANSTREAM_{name.upper()}" for name in Settings.model_fields]
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, known, 1)) else k
                 for k in unknown]
        raise ConfigError(f"invalid settings: unknown variables {', '.join(hints)}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_format(exc, 'SPANSTREAM_', upper=True)}") from None


def load_pipelines(path: Path) -> list[PipelineConfig]:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(raw) - {"pipelines"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)} (expected [[pipelines]])")
    tables = raw.get("pipelines")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: no [[pipelines]] defined")
    pipelines = []
    for i, table in enumerate(tables):
        try:
            if isinstance(table.get("schema"), str):  # a JSON file, relative to the TOML file
                table = {**table, "schema": str(path.parent / Path(table["schema"]).expanduser())}
            pipelines.append(PipelineConfig(**table))
        except ValidationError as exc:
            raise ConfigError(f"{path}: {_format(exc, f'pipelines[{i}].')}") from None
    names = [p.name for p in pipelines]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: pipeline names must be unique, got {names}")
    return pipelines
