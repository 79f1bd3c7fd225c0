"""``difronte-edge diagnose``: build the report, print it, save it, optionally upload it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .report import build_report
from .summary import format_summary
from .upload import UploadError, upload_report

__all__ = ["TOKEN_ENV", "add_arguments", "main", "run"]

TOKEN_ENV = "DIFRONTE_UPLOAD_TOKEN"

EXIT_OK = 0
EXIT_UPLOAD_FAILED = 2
EXIT_BAD_INPUT = 64  # EX_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``diagnose`` options to a (sub)parser."""
    parser.add_argument("--json", action="store_true", help="print the JSON report, not a summary")
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON report to this file")
    parser.add_argument(
        "--test-devices",
        action="store_true",
        help="grab a camera frame and record 2 s of audio to check that they work",
    )
    parser.add_argument("--upload", metavar="URL", help="POST the report to this URL")
    parser.add_argument(
        "--token-file", type=Path, help=f"bearer token for --upload (default: ${TOKEN_ENV})"
    )
    parser.add_argument("--lang", choices=("it", "en"), default="it", help="summary language")


def _write_atomically(path: Path, text: str) -> None:
    # A half-written report would be worse than none: write aside, then rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(
    args: argparse.Namespace,
    *,
    build: Callable[..., dict[str, Any]] = build_report,
    upload: Callable[..., Any] = upload_report,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Carry out ``diagnose`` with parsed arguments; returns the process exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    token: str | None = os.environ.get(TOKEN_ENV)
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            print(f"--token-file: cannot read {args.token_file}: {exc.strerror}", file=err)
            return EXIT_BAD_INPUT
    report = build(test_devices=args.test_devices)
    text = json.dumps(report, indent=2, ensure_ascii=False, sort_keys=False)
    if args.output is not None:
        _write_atomically(args.output, text + "\n")
    print(text if args.json else format_summary(report, lang=args.lang), file=out)
    if args.upload:
        try:
            upload(report, args.upload, token=token)
        except UploadError as exc:
            print(str(exc), file=err)
            return EXIT_UPLOAD_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m edge.diagnostics``."""
    parser = argparse.ArgumentParser(
        prog="difronte-edge diagnose", description="Hardware diagnostics report for the workshop."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
