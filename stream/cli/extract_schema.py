"""`spanstream extract` on a GLiNER2 model: one schema (or one per line) per text, results in
gliner2's shape. Never imports torch, gliner or gliner2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO

import orjson

from stream.errors import InvalidInput, ModelLoadError


def run_schema(args: argparse.Namespace) -> int:
    from stream.engine import default_model_path
    from stream.engine.gliner2.engine import Gliner2Engine, is_gliner2_folder

    model = Path(args.model) if args.model else default_model_path()
    if not is_gliner2_folder(model):
        print(f"spanstream extract: --schema needs a GLiNER2 model folder (made by `spanstream export-gliner2`); "
              f"{model} is not one", file=sys.stderr)
        return 2
    default = None
    if args.schema is not None:
        try:
            default = orjson.loads(Path(args.schema).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            print(f"spanstream extract: --schema {args.schema}: {exc}", file=sys.stderr)
            return 2
    try:
        engine = Gliner2Engine(model)
        if default is not None:
            engine.check_schema(default)
    except ModelLoadError as exc:
        print(f"spanstream extract: {exc}", file=sys.stderr)
        return 2
    except InvalidInput as exc:
        print(f"spanstream extract: --schema {args.schema}: {exc.message}", file=sys.stderr)
        return 2
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    with source:
        failed = extract_schema_stream(engine, default, source, sys.stdout.buffer, args)
    return 1 if failed else 0


def parse_schema_line(raw: bytes, default: dict | None) -> tuple[object, str, object]:
    """(id, text, schema) or ValueError with the reason."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("(root): a line must be a JSON object")
    if extra := sorted(set(obj) - {"id", "text", "schema"}):
        raise ValueError(f"(root): unknown key(s) {extra}; a line has id, text and schema")
    if not isinstance(obj.get("text"), str):
        raise ValueError("text: a string is required")
    schema = obj.get("schema", default)
    if schema is None:
        raise ValueError("no schema: give 'schema' in the line or --schema")
    return obj.get("id"), obj["text"], schema


def extract_schema_stream(engine, default: dict | None, source: IO[bytes], out: IO[bytes],
                          args: argparse.Namespace) -> int:
    from stream.cli.extract import process_lines

    def parse(number: int, raw: bytes) -> tuple:
        ident, text, schema = parse_schema_line(raw, default)
        return number, ident, text, engine.check_schema(schema)

    def extract(items: list[tuple]) -> list:
        return engine.extract([p[2] for p in items], [p[3] for p in items], threshold=args.threshold,
                              include_confidence=True, include_spans=True, overlap_policy=args.overlap_policy,
                              batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens)

    def record(item: tuple, result: dict) -> dict:
        return {"id": item[1] if item[1] is not None else item[0], "result": result}

    return process_lines(source, out, args.lookahead, parse, extract, record)
