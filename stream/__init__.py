"""spanstream: streaming zero-shot entity extraction (GLiNER on onnxruntime) for Kafka.

Importing this package has no side effects; heavy modules load on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
