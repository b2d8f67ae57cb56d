"""One security configuration for every Kafka client spanstream creates: faust's consumer and
producer, the publisher, the lag reader and the CLIs all take their connection from here."""

from __future__ import annotations

import ssl

from stream.config import Settings


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for SSL / SASL_SSL: the CA bundle (else the system's), and a client certificate and key
    when the broker requires mutual TLS; None for the plaintext protocols."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    password = settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else None
    return create_ssl_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
                              certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
                              keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                              password=password)


def kafka_client_kwargs(settings: Settings, bootstrap: str | None = None) -> dict:
    """aiokafka keyword arguments: bootstrap, client id, security protocol, SASL and TLS."""
    kw: dict = {"bootstrap_servers": bootstrap or settings.kafka_bootstrap, "client_id": settings.client_id,
                "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=settings.kafka_sasl_password.get_secret_value()
                  if settings.kafka_sasl_password else None)
    context = kafka_ssl_context(settings)
    if context is not None:
        kw["ssl_context"] = context
    return kw


def faust_credentials(settings: Settings):
    """The same configuration as faust ``broker_credentials`` (None for PLAINTEXT)."""
    from faust.auth import SASLCredentials, SSLCredentials

    context = kafka_ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        return SASLCredentials(username=settings.kafka_sasl_username,
                               password=settings.kafka_sasl_password.get_secret_value()
                               if settings.kafka_sasl_password else None,
                               ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
    if context is not None:
        return SSLCredentials(context)
    return None
