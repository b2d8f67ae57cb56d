"""One exception tree for spanstream; subclasses carry what the caller needs to decide."""

from __future__ import annotations

__all__ = [
    "SpanstreamError", "ConfigError", "ModelLoadError", "InvalidInput", "EngineError",
    "EngineOverloaded", "EngineStopped", "PublishError",
]


class SpanstreamError(Exception):
    """Root of every error spanstream raises on purpose."""

    retriable: bool = False


class ConfigError(SpanstreamError):
    """Invalid configuration; raised at start-up, names the offending key."""


class ModelLoadError(SpanstreamError):
    """A model folder is missing, incomplete, or of an unsupported kind."""


class InvalidInput(SpanstreamError):
    """An input (a record, a text, a label set) cannot be processed, whoever retries it.

    ``reason`` is a stable code (the dead letter's reason, the HTTP error's ``reason``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class EngineError(SpanstreamError):
    """Inference failed for a batch."""

    def __init__(self, message: str, retriable: bool = False):
        super().__init__(message)
        self.retriable = retriable


class EngineStopped(EngineError):
    """The inference loop has died (a bug); nothing more will run in this process. Liveness
    probes fail, streams exit without acking (Kafka redelivers), HTTP answers 503."""

    def __init__(self, message: str = "the inference loop has stopped; this process must restart"):
        super().__init__(message, retriable=True)


class EngineOverloaded(SpanstreamError):
    """No in-flight slot free; try again after ``retry_after`` seconds."""

    retriable = True

    def __init__(self, retry_after: float = 1.0):
        super().__init__(f"engine overloaded, retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class PublishError(SpanstreamError):
    """Producing an output or dead-letter record failed."""
