"""Where the first complete tool call of an answer ends.

In next-call mode a speculator needs one call, and every token after it is latency. A stop
string cannot say where a call ends: ``}}`` fires inside ``{"arguments": {"f": {"y": 1}}}``
(nested arguments) and inside string values (code, templates). This module scans instead:

* a JSON call: from the first ``{`` to the brace that closes it, with brackets counted and
  string literals (with their escapes) skipped;
* a Hermes block: from ``<tool_call>`` past its ``</tool_call>`` (the JSON inside is scanned the
  same way, so a ``</tool_call>`` inside a string argument does not end it).

Text before the first ``{`` or ``<tool_call>`` may be prose and is kept. The scanner is
incremental (:class:`CallScanner`), so a decoding loop feeds it each step's new text only.
"""

from __future__ import annotations

HERMES_OPEN = "<tool_call>"
HERMES_CLOSE = "</tool_call>"


class CallScanner:
    """Feeds on text pieces; :attr:`end` becomes the index (in all text fed) just past the
    first complete call, and stays there."""

    def __init__(self) -> None:
        self.text = ""
        self.end: int | None = None
        self._pos = 0  # next character to scan
        self._mode: str | None = None  # None: before the call; "json" or "hermes"
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._object_done = False  # hermes: the JSON inside the block has closed

    def feed(self, piece: str) -> int | None:
        """Add ``piece``; the end of the first complete call, or None while it is incomplete."""
        if self.end is not None or not piece:
            return self.end
        self.text += piece
        text = self.text
        while self.end is None and self._pos < len(text):
            if self._mode is None and not self._find_start():
                break
            if self._mode == "hermes" and (self._object_done or self._depth == 0):
                if not self._hermes_outside_json():
                    break
                continue
            self._scan_json()
        return self.end

    def _find_start(self) -> bool:
        """Move to the first ``{`` or ``<tool_call>``; False when neither has appeared yet."""
        text = self.text
        brace = text.find("{", self._pos)
        tag = text.find(HERMES_OPEN, self._pos)
        if tag != -1 and (brace == -1 or tag < brace):
            self._mode, self._pos = "hermes", tag + len(HERMES_OPEN)
            return True
        if brace != -1:
            self._mode, self._pos = "json", brace
            return True
        # A "<tool_call>" split across pieces: look again from where it could start.
        self._pos = max(self._pos, len(text) - len(HERMES_OPEN) + 1)
        return False

    def _hermes_outside_json(self) -> bool:
        """Inside a Hermes block but not inside its JSON: the closing tag, or the JSON's start."""
        text = self.text
        close = text.find(HERMES_CLOSE, self._pos)
        brace = -1 if self._object_done else text.find("{", self._pos)
        if brace != -1 and (close == -1 or brace < close):
            self._pos = brace
            self._scan_json()
            return True
        if close != -1:
            self.end = close + len(HERMES_CLOSE)
            return True
        self._pos = max(self._pos, len(text) - len(HERMES_CLOSE) + 1)
        return False

    def _scan_json(self) -> None:
        """Scan from the current position until the text ends or the JSON value closes."""
        text = self.text
        pos = self._pos
        while pos < len(text):
            char = text[pos]
            pos += 1
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif char == "\\":
                    self._escape = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth <= 0:
                    self._depth = 0
                    if self._mode == "json":
                        self.end = pos
                    else:
                        self._object_done = True
                    break
        self._pos = pos


def first_call_end(text: str) -> int | None:
    """Index just past the first complete call in ``text`` (a top-level JSON object, or a
    ``<tool_call>`` block with its closing tag); None while it is not complete."""
    return CallScanner().feed(text)


def cut_first_call(text: str) -> str:
    """``text`` up to the end of its first complete call; unchanged when no call is complete."""
    end = first_call_end(text)
    return text if end is None else text[:end]


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> str:
    """Text up to and including the first stop string (what vLLM returns with include_stop_str)."""
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else text
