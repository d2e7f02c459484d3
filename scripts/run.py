"""`python -m scripts.run MODULE [ARGS...]`: run MODULE as `python -m MODULE ARGS...` would, except
that a bad `CC_*` value prints its one-line message (`CC_WS_QUEUE_MAX: expected an integer, got
'1k'`) and exits 2 instead of a traceback. The Makefile starts its commands through it, so every
command reports configuration mistakes the same way without each catching them itself.

It also loads `.env` into the environment (never over a variable already set): `Settings` reads
the file itself, but the children a command starts (dagster dev's code servers, the sidecar) and
code that hands `os.environ` to `Settings.from_env` explicitly must see the same values."""

from __future__ import annotations

import runpy
import sys

from dotenv import load_dotenv

from resources.settings import ENV_FILE, SettingsError


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    module = sys.argv[1]
    load_dotenv(ENV_FILE, override=False)
    sys.argv = [module, *sys.argv[2:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
