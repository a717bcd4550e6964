"""What the commands print goes through here: a prompt, a name or a library's message can
hold characters a terminal acts on (ANSI escapes that recolour, clear or retitle it); they are
shown as escapes instead (engine.text.printable), on stdout and stderr alike."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from engine.text import printable


class PrintableStream:
    """A text stream that writes control characters as their escapes; lines, tabs and the
    progress bar's carriage returns pass as they are."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep_lines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def printable_output() -> Iterator[None]:
    """stdout and stderr through PrintableStream while a command runs."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(out), PrintableStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
