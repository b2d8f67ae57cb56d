import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.kafka_fixtures", "tests.worker_harness"]


# Markers by module, in one table, so `make test-unit` (``-m "not kafka and not cluster and not docker
# and not helm and not model and not slow and not process"``) takes seconds while `make test` runs everything.
MODULE_MARKERS = {
    "tests/deploy/test_image.py": ("docker",),
    "tests/deploy/test_compose.py": ("docker",),
    "tests/deploy/test_chart.py": ("helm",),
    "tests/deploy/test_audit.py": ("slow",),
    "tests/models/": ("model",),
    "tests/engine/test_parity.py": ("slow",),
    "tests/engine/test_gliner2_parity.py": ("slow",),
    "tests/engine/test_int8.py": ("slow", "model"),
    "tests/engine/test_gliner2_int8.py": ("slow",),
    "tests/engine/test_windows.py": ("slow",),
    "tests/http/test_overload_memory.py": ("slow",),
    "tests/http/test_fuzz_and_balancer.py": ("slow",),
    "tests/http/test_client_gone.py": ("slow",),
    "tests/deploy/test_packaging.py": ("process",),
    "tests/deploy/test_dockerfile.py": ("process",),
    "tests/http/": ("process",),
    "tests/cli/": ("process",),
    "tests/sink/test_database.py": ("process",),
    "tests/sink/test_database_tls.py": ("process",),
    "tests/sink/test_sink_faults.py": ("slow", "process"),
}


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        path = Path(str(item.fspath)).relative_to(ROOT).as_posix()
        for prefix, markers in MODULE_MARKERS.items():
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                for marker in markers:
                    item.add_marker(getattr(pytest.mark, marker))
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("kafka"):
            item.add_marker(pytest.mark.kafka)
        if "kafka_cluster3" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.cluster)
