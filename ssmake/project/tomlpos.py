"""Find the line where a key is defined in TOML text, for error messages.

tomllib parses without positions, so this scans the raw text once and maps each
key path to the 1-based line of its first definition: table headers (quoted
keys included), dotted keys, keys inside inline tables (the line they are on)
and the first line of multi-line arrays and strings. It is a locator, not a
parser: on anything unexpected it stops and keeps what it found, and a path it
does not know falls back to its nearest enclosing table.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence

KeyPath = tuple[str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}#\r\n]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def format_key(path: Sequence[str]) -> str:
    """`tasks."my task".inputs`: a key path as it would be written in TOML."""
    return ".".join(part if _BARE_KEY.fullmatch(part) else json.dumps(part) for part in path)


class Locator:
    """Where the keys of one TOML document are defined, and what to call the document."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        scanner = _Scanner(text)
        try:
            scanner.scan()
        except (_Stop, ValueError, RecursionError):
            pass  # keep the lines found so far; the rest fall back to their tables
        self._lines = scanner.lines

    def line(self, path: Sequence[str]) -> int | None:
        """The line defining `path`, else that of its nearest enclosing table, else None."""
        key = tuple(path)
        for end in range(len(key), 0, -1):
            line = self._lines.get(key[:end])
            if line is not None:
                return line
        return None


class _Stop(Exception):
    """The text is not shaped as expected from here on."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.newlines = [i for i, char in enumerate(text) if char == "\n"]
        self.lines: dict[KeyPath, int] = {}

    def scan(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.text[self.pos] == "[":
                table = self.header()
            else:
                self.keyval(table)

    def line(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1

    def record(self, path: KeyPath, line: int) -> None:
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    def skip(self, *, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif char == "#" and newlines:
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def expect(self, token: str) -> None:
        self.skip(newlines=False)
        if not self.text.startswith(token, self.pos):
            raise _Stop
        self.pos += len(token)

    def header(self) -> KeyPath:
        line = self.line()
        # [[array.of.tables]] is not used by Ssmfiles: treat it as its table.
        close = "]]" if self.text.startswith("[[", self.pos) else "]"
        self.pos += len(close)
        path = self.key()
        self.expect(close)
        self.record(path, line)
        return path

    def keyval(self, table: KeyPath) -> None:
        line = self.line()
        path = table + self.key()
        self.expect("=")
        self.record(path, line)
        self.value(path)

    def key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self.skip(newlines=False)
            parts.append(self.key_part())
            self.skip(newlines=False)
            if not self.text.startswith(".", self.pos):
                return tuple(parts)
            self.pos += 1

    def key_part(self) -> str:
        if self.text.startswith('"', self.pos):
            return self.basic_string()
        if self.text.startswith("'", self.pos):
            return self.literal_string()
        match = _BARE_KEY.match(self.text, self.pos)
        if match is None:
            raise _Stop
        self.pos = match.end()
        return match.group()

    def value(self, path: KeyPath | None) -> None:
        """Skip one value; record the keys of inline tables under `path` (None: don't)."""
        self.skip(newlines=False)
        head = self.text[self.pos : self.pos + 3]
        if head in ('"""', "'''"):
            self.multiline_string(head)
        elif head.startswith('"'):
            self.basic_string()
        elif head.startswith("'"):
            self.literal_string()
        elif head.startswith("["):
            self.array()
        elif head.startswith("{"):
            self.inline_table(path)
        else:
            match = _SCALAR.match(self.text, self.pos)
            if match is None:
                raise _Stop
            self.pos = match.end()

    def array(self) -> None:
        self.pos += 1
        while True:
            self.skip(newlines=True)
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return
            self.value(None)
            self.skip(newlines=True)
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("]", self.pos):
                raise _Stop

    def inline_table(self, path: KeyPath | None) -> None:
        self.pos += 1
        while True:
            self.skip(newlines=True)
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return
            line = self.line()
            sub = self.key()
            self.expect("=")
            inner = None if path is None else path + sub
            if inner is not None:
                self.record(inner, line)
            self.value(inner)
            self.skip(newlines=True)
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("}", self.pos):
                raise _Stop

    def basic_string(self) -> str:
        text, i = self.text, self.pos + 1
        out: list[str] = []
        while i < len(text):
            char = text[i]
            if char == '"':
                self.pos = i + 1
                return "".join(out)
            if char == "\n":
                raise _Stop
            if char == "\\":
                escape = text[i + 1 : i + 2]
                width = {"u": 4, "U": 8}.get(escape, 0)
                if width:
                    out.append(chr(int(text[i + 2 : i + 2 + width], 16)))
                else:
                    out.append(_ESCAPES.get(escape, escape))
                i += 2 + width
                continue
            out.append(char)
            i += 1
        raise _Stop

    def literal_string(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0 or "\n" in self.text[self.pos : end]:
            raise _Stop
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def multiline_string(self, delimiter: str) -> None:
        text, start = self.text, self.pos + 3
        while True:
            end = text.find(delimiter, start)
            if end < 0:
                raise _Stop
            if delimiter == '"""' and _escaped(text, end):
                start = end + 1
                continue
            break
        # A closing delimiter may be preceded by up to two quotes of the content.
        stop = end + 3
        while stop < len(text) and stop - end < 5 and text[stop] == delimiter[0]:
            stop += 1
        self.pos = stop


def _escaped(text: str, index: int) -> bool:
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1
