"""`spanstream export-gliner2 SRC DST`: a GLiNER2 checkpoint (``GLiNER2.save_pretrained``) →
spanstream's torch-free folder (encoder ONNX + numpy heads). Dev-time: needs the `export` extra."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream.errors import ModelLoadError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-gliner2", help="export a GLiNER2 checkpoint folder to spanstream's ONNX layout "
                                              "(needs the `export` extra: torch + gliner2)")
    p.add_argument("src", type=Path, help="a folder written by gliner2's save_pretrained")
    p.add_argument("dst", type=Path, help="the folder to write (replaced if it exists)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (int8 needs >= 18)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import gliner2  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        print(f"spanstream export-gliner2: {exc.name} is not installed; it needs the `export` extra "
              "(make export-dev, or pip install 'spanstream[export]')", file=sys.stderr)
        return 2
    from stream.engine.gliner2.export import export_gliner2

    if not (args.src / "config.json").is_file():
        print(f"spanstream export-gliner2: {args.src} has no config.json; give a folder written by "
              "GLiNER2.save_pretrained", file=sys.stderr)
        return 2
    try:
        out = export_gliner2(args.src, args.dst, opset=args.opset)
    except ModelLoadError as exc:
        print(f"spanstream export-gliner2: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
