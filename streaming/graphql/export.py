"""`python -m streaming.graphql.export`: write the schema's SDL to `streaming/graphql/schema.graphql`
(`--check`: only say whether it is up to date; exit 1 if not). The test suite compares that file with
what a running sidecar's introspection answers, so a change to the schema comes with its SDL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SDL_PATH = Path(__file__).with_name("schema.graphql")


def sdl() -> str:
    from streaming.graphql.schema import schema

    return schema.as_str() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the schema")
    args = parser.parse_args(argv)
    text = sdl()
    if args.check:
        current = SDL_PATH.read_text() if SDL_PATH.exists() else ""
        if current != text:
            print(f"{SDL_PATH} is out of date: run `python -m streaming.graphql.export`", file=sys.stderr)
            return 1
        return 0
    SDL_PATH.write_text(text)
    print(f"wrote {SDL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
