"""`spanstream extract`: JSONL in (file or stdin), one JSON line of entities out per input line.

With a GLiNER2 model (a folder made by ``spanstream export-gliner2``) lines are
``{"id", "text", "schema"?}`` (a line's schema overrides ``--schema``) and each output line is
``{"id": …, "result": R}``, R in gliner2's shape (``batch_extract`` with confidence and spans).

Malformed lines produce an error record (line number, reason) and processing continues; the
exit code is 1 when any line failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

import orjson

from stream.engine.batching import (
    DEFAULT_LOOKAHEAD,
    DEFAULT_MAX_ROWS,
    DEFAULT_MAX_TOKENS,
)
from stream.errors import InvalidInput, ModelLoadError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="extract entities from JSONL ({\"id\"?, \"text\", \"labels\"?} per line)")
    p.add_argument("--model", default=None,
                   help="model folder, or hf://org/name to download one (default: the embedded model)")
    p.add_argument("--labels", default=None, help="comma-separated labels for lines that carry none")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default="auto")
    p.add_argument("--nested", action="store_true", help="allow nested entities (default: flat)")
    p.add_argument("--multi-label", action="store_true", help="one span may carry several labels")
    p.add_argument("--batch-size", type=int, default=DEFAULT_MAX_ROWS, help="model rows per engine call")
    p.add_argument("--max-batch-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help="padded tokens per engine call (rows x longest row)")
    p.add_argument("--lookahead", type=int, default=DEFAULT_LOOKAHEAD,
                   help="lines read, sorted by length and batched together before their results are written")
    p.add_argument("--input", type=Path, default=None, help="JSONL file (default: stdin)")
    p.add_argument("--schema", type=Path, default=None,
                   help="GLiNER2 models: a JSON file with gliner2's schema dict (Schema.to_dict()) for lines "
                        "that carry none")
    p.add_argument("--overlap-policy", default=None, choices=["allow", "nested", "flat", "disallow", "longest"],
                   help="GLiNER2 models: gliner2's overlap_policy (default: its greedy one)")
    p.set_defaults(func=run)


def parse_line(raw: bytes, default_labels: list[str] | None) -> tuple[object, str, list[str]]:
    """(id, text, labels) or ValueError with the reason; lines follow the text-event schema."""
    from stream.schemas import TEXT_EVENT, validator

    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    errors = sorted(validator(TEXT_EVENT).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        raise ValueError(f"{where}: {errors[0].message}")
    labels = obj.get("labels", default_labels)
    if not labels:
        raise ValueError("no labels: give 'labels' in the line or --labels")
    return obj.get("id"), obj["text"], labels


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield number, raw


def run(args: argparse.Namespace) -> int:
    from stream.engine import Extractor
    from stream.engine.gliner2.engine import is_gliner2_folder

    # A GLiNER2 model answers schemas; given --labels (and no --schema) it answers them as entities.
    if args.schema is not None or (args.model and is_gliner2_folder(Path(args.model)) and not args.labels):
        from stream.cli.extract_schema import run_schema

        return run_schema(args)
    try:
        extractor = Extractor.load(args.model, variant=args.variant)
    except ModelLoadError as exc:
        print(f"spanstream extract: {exc}", file=sys.stderr)
        return 2
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    with source:
        failed = extract_stream(extractor, source, sys.stdout.buffer, args)
    return 1 if failed else 0


class _Failed(NamedTuple):
    """A line the engine failed on, alone."""

    error: str


def process_lines(source: IO[bytes], out: IO[bytes], lookahead: int, parse: Callable[[int, bytes], tuple],
                  extract: Callable[[list[tuple]], list], record: Callable[[tuple, object], dict]) -> int:
    """The JSONL loop both engines share: ``parse(number, raw)`` → an item ``(number, id, …)``
    (``ValueError``/``InvalidInput``: an error record), ``lookahead`` items extracted together
    (if the engine fails on them, each alone, so only bad lines fail), one JSON line per input
    line in input order (``record(item, result)``); returns the failed lines."""
    failed = 0
    pending: list[tuple | dict] = []
    for number, raw in _lines(source):
        try:
            pending.append(parse(number, raw))
        except ValueError as exc:
            failed += 1
            pending.append({"line": number, "error": str(exc)})
        except InvalidInput as exc:
            failed += 1
            pending.append({"line": number, "error": exc.message, "reason": exc.reason})
        if len(pending) >= lookahead:
            failed += _flush(pending, extract, record, out)
            pending = []
    if pending:
        failed += _flush(pending, extract, record, out)
    out.flush()
    return failed


def _flush(pending: list, extract, record, out: IO[bytes]) -> int:
    good = [p for p in pending if not isinstance(p, dict)]
    try:
        results = iter(extract(good))
    except Exception:
        alone: list = []
        for p in good:
            try:
                alone.extend(extract([p]))
            except Exception as exc:
                alone.append(_Failed(f"{type(exc).__name__}: {exc}"))
        results = iter(alone)
    failed = 0
    for item in pending:
        if not isinstance(item, dict):
            result = next(results)
            item = {"line": item[0], "error": result.error} if isinstance(result, _Failed) else record(item, result)
            failed += "error" in item
        out.write(orjson.dumps(item) + b"\n")
    return failed


def extract_stream(extractor, source: IO[bytes], out: IO[bytes], args: argparse.Namespace) -> int:
    """The command's loop on a span model: lines ``{"id"?, "text", "labels"?}`` → entities."""
    default_labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None

    def parse(number: int, raw: bytes) -> tuple:
        item = (number, *parse_line(raw, default_labels))
        extractor.engine.check_labels(tuple(dict.fromkeys(item[3])))
        return item

    def extract(items: list[tuple]) -> list:
        return extractor.extract_detailed([p[2] for p in items], [p[3] for p in items], threshold=args.threshold,
                                          flat_ner=not args.nested, multi_label=args.multi_label,
                                          batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens)

    def record(item: tuple, result) -> dict:
        out = {"id": item[1] if item[1] is not None else item[0], "entities": [e._asdict() for e in result.entities]}
        if result.windowed:
            out["windowed"] = True
        return out

    return process_lines(source, out, args.lookahead, parse, extract, record)
