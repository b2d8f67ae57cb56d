"""Test certificates made with openssl: a CA, a server certificate for 127.0.0.1/localhost and a
client certificate, both signed by the CA (the secured Kafka and PostgreSQL tests use them)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d: Path, client_cn: str = "client") -> dict[str, Path]:
    """Files: ``ca``; ``server_cert``/``server_key`` (PEM), ``keystore`` (Kafka's PEM keystore: the
    PKCS#8 key then the certificate); ``client_cert``/``client_key`` (subject CN ``client_cn``)."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=spanstream-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("broker", "broker"), ("client", client_cn)):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
        _openssl("pkcs8", "-topk8", "-nocrypt", "-in", f"{name}.key", "-out", f"{name}.pk8", cwd=d)
    (d / "broker-keystore.pem").write_bytes((d / "broker.pk8").read_bytes() + (d / "broker.pem").read_bytes())
    return {"ca": d / "ca.pem", "client_cert": d / "client.pem", "client_key": d / "client.pk8",
            "keystore": d / "broker-keystore.pem", "server_cert": d / "broker.pem", "server_key": d / "broker.key"}
