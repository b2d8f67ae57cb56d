"""Static checks of what users deploy: the Helm chart's values, the Dockerfile, the compose file."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

from stream.config import load_pipelines

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "spanstream"


def _has(values: dict, dotted: str) -> bool:
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_values_reference_in_templates_exists():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "spanstream"
    refs = set()
    for tpl in (CHART / "templates").iterdir():
        refs |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", tpl.read_text()))
    missing = sorted(r for r in refs if not _has(values, r))
    assert refs and not missing, missing


def test_chart_pipelines_and_example_config_are_valid(tmp_path):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cfg = tmp_path / "p.toml"
    cfg.write_text(values["pipelines"])
    assert load_pipelines(cfg)[0].name == "default"
    assert load_pipelines(ROOT / "docker" / "pipelines.example.toml")[0].name == "news"


def test_dockerfile_copies_existing_paths_and_compose_parses():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        assert (ROOT / src).exists(), src
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert {"kafka", "worker", "topics"} <= set(compose["services"])
    tomllib.loads((ROOT / "docker" / "pipelines.example.toml").read_text())


def test_dev_tools_stay_out_of_the_runtime_package_and_the_image():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["stream*"]
    for path in (ROOT / "stream").rglob("*.py"):
        assert "devtools" not in path.read_text(), path
    assert "devtools" not in (ROOT / "docker" / "Dockerfile").read_text()


def test_a_built_wheel_validates_events_and_loads_its_default_model(tmp_path):
    """schemas/ and the embedded model used to be found relative to the repository: an installed
    wheel could neither validate an event nor load its default model."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheel").glob("spanstream-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import stream, orjson; from stream.schemas import validator, TEXT_EVENT; "
            "validator(TEXT_EVENT).validate({'text': 'Paris'}); "
            "from stream.engine import default_model_path; p = default_model_path(); "
            "assert (p / 'gliner2_config.json').is_file(), p; print(stream.__file__)")
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); "
                           + code], capture_output=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().startswith(str(tmp_path / "site")), proc.stdout
