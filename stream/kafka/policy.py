"""The failure policy of the stream path: one table from what went wrong to what the worker does.

| failure                                         | action                                      |
|-------------------------------------------------|---------------------------------------------|
| bad input (``InvalidInput``: record, labels)    | dead letter with the record's reason code   |
| engine failure on one record (``EngineError``)  | dead letter ``engine_error``                |
| inference loop dead (``EngineStopped``)         | fatal: not the record's fault               |
| publish rejected for one record (non-retriable) | dead letter ``publish_rejected``, move on    |
| retriable infrastructure error                  | retry with backoff, up to the publish budget |
| anything else, or a budget exhausted            | fatal: exit without committing (redelivered) |

Callers read ``retriable`` on the error (spanstream's own errors and aiokafka's ``KafkaError``
both carry it) rather than matching types. The HTTP path has its own table (``http.status``).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from aiokafka.errors import KafkaError

from stream.errors import EngineError, EngineStopped, InvalidInput, PublishError

__all__ = ["Action", "Decision", "decide"]


class Action(enum.Enum):
    DEAD_LETTER = "dead_letter"
    "Publish a dead letter for this record, then ack it: the partition moves on."
    RETRY = "retry"
    "Try again after a backoff; past the budget the failure becomes fatal."
    FATAL = "fatal"
    "Exit without committing: the orchestrator restarts the worker and Kafka redelivers."


class Decision(NamedTuple):
    action: Action
    reason: str
    "The dead-letter reason code (or what the log says for the other actions)."


def decide(exc: BaseException) -> Decision:
    """What the worker does about ``exc`` for the record(s) it concerns."""
    if isinstance(exc, InvalidInput):
        return Decision(Action.DEAD_LETTER, exc.reason)
    if isinstance(exc, EngineStopped):
        return Decision(Action.FATAL, "engine_stopped")
    if isinstance(exc, EngineError):
        return Decision(Action.RETRY if exc.retriable else Action.DEAD_LETTER, "engine_error")
    if isinstance(exc, (KafkaError, PublishError)):
        return Decision(Action.RETRY if getattr(exc, "retriable", False) else Action.DEAD_LETTER,
                        "publish_rejected")
    return Decision(Action.FATAL, f"{type(exc).__name__}")
