"""Optional bearer-token auth on /v1/extract (token from env or a mounted file); probes, /metrics,
/v1/models and /openapi.json stay open."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.serve_harness import ServeProc, request

TOKEN = "s3cret-token-for-tests"
BODY = {"text": "Ada Lovelace lived in London.", "labels": ["person"]}


def post(url: str, token: str | None) -> int:
    req = urllib.request.Request(url + "/v1/extract", data=json.dumps(BODY).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            assert exc.headers.get("WWW-Authenticate", "").startswith("Bearer")
            assert json.loads(exc.read())["error"]["type"] == "unauthorized"
        return exc.code


def test_extract_needs_the_token_from_a_mounted_file_and_probes_stay_open(tmp_path):
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    server = ServeProc(env={"SPANSTREAM_HTTP_AUTH_TOKEN_FILE": str(secret)}).start()
    try:
        assert post(server.url, None) == 401
        assert post(server.url, "wrong") == 401
        assert post(server.url, TOKEN) == 200
        for path in ("/healthz", "/readyz", "/metrics", "/v1/models", "/openapi.json"):
            assert request(server.url + path)[0] == 200, path
        assert TOKEN not in request(server.url + "/metrics")[2].decode()
    finally:
        assert server.stop() == 0


def test_without_a_token_extract_is_open():
    server = ServeProc().start()
    try:
        assert post(server.url, None) == 200
    finally:
        server.stop()
