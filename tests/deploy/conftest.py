"""The Docker engine and the spanstream image the image and compose tests share (built once)."""

from __future__ import annotations

import time

import pytest

from devtools import docker as dk

TAG = "spanstream:test"


@pytest.fixture(scope="session")
def docker(tmp_path_factory):
    engine = dk.ensure_daemon()
    log_path = tmp_path_factory.mktemp("image") / "build.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        how = dk.ensure_base(engine, log)
        try:
            dk.build_image(engine, TAG, log)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{log_path.read_text(errors='replace')[-4000:]}") from None
    print(f"\nimage {TAG}: bases {how}, {dk.image_size_mb(engine, TAG):.0f} MB, "
          f"ready in {time.monotonic() - started:.0f} s")
    yield engine
    if engine.started_here:  # leave the machine as found; the image cache stays on disk
        dk.stop_daemon()
