"""`spanstream config`: the effective settings (env, flags, defaults) and pipelines, secrets masked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from stream.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the effective settings (secrets masked) and pipelines, then exit")
    p.add_argument("--config", type=Path, default=None, help="pipelines TOML (or SPANSTREAM_CONFIG)")
    p.add_argument("--describe", action="store_true", help="also print each setting's env var and trade-off")
    p.set_defaults(func=run)


def effective(config: Path | None = None) -> dict:
    """Settings as JSON-ready values (``SecretStr`` stays masked) plus the pipelines, if any."""
    from stream.config import load_pipelines, load_settings

    settings = load_settings(config=config)
    out: dict = {"settings": settings.model_dump(mode="json")}
    if settings.config is not None:
        out["pipelines"] = [p.model_dump(mode="json", by_alias=True) for p in load_pipelines(settings.config)]  # TOML keys
    return out


def describe() -> list[dict]:
    from stream.config import Settings

    return [{"env": f"SPANSTREAM_{name.upper()}", "default": None if f.default_factory else f.default,
             "description": f.description or ""} for name, f in Settings.model_fields.items()]


def run(args: argparse.Namespace) -> int:
    try:
        data = effective(args.config)
    except ConfigError as exc:
        print(f"spanstream config: {exc}", file=sys.stderr)
        return 2
    if args.describe:
        data["reference"] = describe()
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str) + b"\n")
    return 0
