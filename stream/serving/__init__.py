"""Serving: what streams and HTTP share in front of the engine — the engine registry and the
inference queue (admission by real token cost, the one batching path)."""

from stream.serving.queue import InferenceQueue, Outcome, QueueLimits
from stream.serving.registry import get_engine

__all__ = ["InferenceQueue", "Outcome", "QueueLimits", "get_engine"]
