"""Connection settings shared by every Kafka client spanstream creates (one security configuration)."""

from __future__ import annotations

from stream.config import Settings


def kafka_client_kwargs(settings: Settings) -> dict:
    """aiokafka keyword arguments: bootstrap, client id, security protocol, SASL and TLS."""
    kw: dict = {"bootstrap_servers": settings.kafka_bootstrap, "client_id": settings.client_id,
                "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl_mechanism:
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=settings.kafka_sasl_password.get_secret_value()
                  if settings.kafka_sasl_password else None)
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kw["ssl_context"] = create_ssl_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile
                                               else None)
    return kw
