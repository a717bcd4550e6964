"""The `mycanvas` console command: no arguments opens the window, anything else is the CLI.

Kept free of Qt and torch imports so `mycanvas --help` and every CLI command start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"gui", "open"}:
        from desktop_app.app import run_app

        return run_app(args[1:] if args else [])
    from engine.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
