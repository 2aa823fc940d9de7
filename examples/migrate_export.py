#!/usr/bin/env python3
"""Migrate an exported collection to the newest schema version and report invalid documents.

    mongoexport --db warehouse --collection inventory --out inventory.jsonl
    python examples/migrate_export.py inventory inventory.jsonl --out inventory.v2.jsonl

Valid documents are written, migrated, one per line; every invalid one is reported on stderr with
each error's JSON path. Exit 1 when any document was invalid. Uses the connector's own schemas and
migrations (plus --schemas DIR), so the result is what the connector would publish.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from entrypoints.library import InvalidDocument, Toolkit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("document_type")
    parser.add_argument("export", type=Path, help="mongoexport JSONL (canonical or relaxed Extended JSON)")
    parser.add_argument("--out", type=Path, help="where migrated documents go (default: stdout)")
    parser.add_argument("--schemas", help="an extra schema directory, as schemas.directory")
    args = parser.parse_args()

    kit = Toolkit.load(args.schemas)
    out = args.out.open("wb") if args.out else sys.stdout.buffer
    migrated = invalid = 0
    for number, line in enumerate(args.export.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        document = kit.from_extended_json(line)
        try:
            out.write(orjson.dumps(kit.migrate(args.document_type, document)) + b"\n")
            migrated += 1
        except InvalidDocument as error:
            invalid += 1
            print(f"line {number} (_id {document.get('_id')}): {error}", file=sys.stderr)
            for problem in error.problems:
                print(f"    {problem.path or '(root)'}: {problem.message}", file=sys.stderr)
    out.flush()
    print(f"{migrated} migrated, {invalid} invalid", file=sys.stderr)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
