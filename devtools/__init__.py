"""Development tools that production does not run: a local Kafka broker from the Maven jars and
the `make run` demo. They live beside the ``stream`` package, not in it, so neither the wheel nor
the image ships them. Run them from a checkout: ``python -m devtools kafka up`` / ``demo``."""
