# Test-only stand-in for python:3.11-slim when no registry serves it: Debian's CPython 3.11 in a
# venv at /usr/local (so `pip`, `python` resolve as in the official image) on debian:bookworm-slim.
# It trusts the CA certificates in ./ca (the sandbox's egress proxy), so never publish it.
FROM debian:bookworm-slim
COPY ca/ /usr/local/share/ca-certificates/
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates netbase tzdata \
 && update-ca-certificates \
 && python3.11 -m venv /usr/local \
 && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf \
 && /usr/local/bin/pip install --no-cache-dir -U pip setuptools wheel \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
