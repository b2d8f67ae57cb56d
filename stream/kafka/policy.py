"""The failure policy of the stream path: one table from (stage, what went wrong) to what the worker does.

| stage   | failure                                                         | action                                  |
|---------|-----------------------------------------------------------------|-----------------------------------------|
| decode  | bad input (``InvalidInput``: record, labels, schema)            | dead letter with the record's reason    |
| decode  | any other exception reading one record                          | dead letter ``decode_error``            |
| infer   | bad input found by the engine (``InvalidInput``)                | dead letter with its reason             |
| infer   | engine failure on this record alone (``EngineError``)           | dead letter ``engine_error``            |
| infer   | inference loop dead (``EngineStopped``), anything else          | fatal: not the record's fault           |
| encode  | any exception writing one record's output event                 | dead letter ``encode_error``            |
| publish | the record itself: size or validity (``MessageSizeTooLarge``,   | dead letter ``publish_rejected``        |
|         | ``RecordListTooLarge``, ``CorruptRecord``, ``PolicyViolation``, | (the value is left out)                 |
|         | ``InvalidTimestamp``, ``RecordTooLarge``)                       |                                         |
| publish | configuration: authorization, fencing, unknown or invalid topic | fatal: exit without commit              |
| publish | timeouts, leader / ISR / connection errors (retriable)          | retry within ``publish_timeout_s``      |
| publish | anything else                                                   | fatal: exit without commit              |

Fatal means the process exits without committing: the orchestrator restarts it and Kafka
redelivers from the last commit, so nothing whose output is not durable is ever committed. A
publish failure becomes a dead letter only when the broker said the record itself can never be
written; a broker that is away or slow, or a topic that is missing or forbidden, is never the
record's fault. The HTTP path has its own table (``http.status``).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from aiokafka import errors as kafka

from stream.errors import EngineError, EngineStopped, InvalidInput, PublishError

__all__ = ["Action", "Decision", "Stage", "decide"]


class Action(enum.Enum):
    DEAD_LETTER = "dead_letter"
    "Publish a dead letter for this record, then ack it: the partition moves on."
    RETRY = "retry"
    "Try again after a backoff; past the budget the failure becomes fatal."
    FATAL = "fatal"
    "Exit without committing: the orchestrator restarts the worker and Kafka redelivers."


class Stage(enum.Enum):
    DECODE = "decode"
    "Reading one input record (bytes → a valid text event)."
    INFER = "infer"
    "The engine's outcome for one record."
    ENCODE = "encode"
    "Writing one record's output event."
    PUBLISH = "publish"
    "The broker's answer for one output record."


class Decision(NamedTuple):
    action: Action
    reason: str
    "The dead-letter reason code (or what the log says for the other actions)."


RECORD_REFUSED = (kafka.MessageSizeTooLargeError, kafka.RecordListTooLargeError, kafka.RecordTooLargeError,
                  kafka.CorruptRecordException, kafka.PolicyViolationError, kafka.InvalidTimestampError)
"The broker (or the producer) refuses this record whatever retries: a dead letter, value left out."

CONFIGURATION = (kafka.TopicAuthorizationFailedError, kafka.ClusterAuthorizationFailedError,
                 kafka.TransactionalIdAuthorizationFailed, kafka.ProducerFenced, kafka.InvalidProducerEpoch,
                 kafka.UnknownTopicOrPartitionError, kafka.InvalidTopicError, kafka.SaslAuthenticationFailed,
                 kafka.AuthenticationFailedError, kafka.UnsupportedVersionError, kafka.KafkaConfigurationError)
"Wrong for every record (ACLs, topic names, credentials): exit, never dead-letter."

TRANSIENT = (kafka.KafkaTimeoutError, kafka.RequestTimedOutError, kafka.NotLeaderForPartitionError,
             kafka.LeaderNotAvailableError, kafka.NotEnoughReplicasError, kafka.NotEnoughReplicasAfterAppendError,
             kafka.KafkaConnectionError, kafka.NodeNotReadyError, kafka.KafkaStorageError)
"The broker is away, slow or electing a leader. (aiokafka marks KafkaTimeoutError non-retriable.)"


def decide(exc: BaseException, stage: Stage) -> Decision:
    """What the worker does about ``exc``, met at ``stage`` for the record(s) it concerns."""
    if stage is Stage.DECODE:
        if isinstance(exc, InvalidInput):
            return Decision(Action.DEAD_LETTER, exc.reason)
        return Decision(Action.DEAD_LETTER, "decode_error")
    if stage is Stage.ENCODE:
        return Decision(Action.DEAD_LETTER, "encode_error")
    if stage is Stage.INFER:
        if isinstance(exc, InvalidInput):
            return Decision(Action.DEAD_LETTER, exc.reason)
        if isinstance(exc, EngineError) and not isinstance(exc, EngineStopped) and not exc.retriable:
            return Decision(Action.DEAD_LETTER, "engine_error")
        return Decision(Action.FATAL, "engine_stopped" if isinstance(exc, EngineStopped) else type(exc).__name__)
    if isinstance(exc, RECORD_REFUSED):
        return Decision(Action.DEAD_LETTER, "publish_rejected")
    if isinstance(exc, CONFIGURATION):
        return Decision(Action.FATAL, f"configuration: {type(exc).__name__}")
    if isinstance(exc, TRANSIENT) or (isinstance(exc, (kafka.KafkaError, PublishError))
                                      and getattr(exc, "retriable", False)):
        return Decision(Action.RETRY, type(exc).__name__)
    return Decision(Action.FATAL, type(exc).__name__)
