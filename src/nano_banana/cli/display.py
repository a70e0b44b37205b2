"""Printing text that came from files and arguments: as data, never as instructions.

Prompts, model and LoRA names, preset names, PNG text chunks and gallery paths
may come from someone else's file. Two readers would otherwise obey them:

* the terminal: ESC and the other C0/C1 controls start OSC/CSI sequences that
  retitle the window, clear the screen or hide a hyperlink;
* rich: ``[/]`` or ``[red]`` in a string given to ``Console.print`` is markup,
  a ``MarkupError`` after the work is done, or text that silently vanishes.

So every command prints such text through ``visible`` (plain output), ``markup``
(inside a rich markup string) or ``json_text`` (JSON for scripts).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.markup import escape

# C0 controls except tab and newline (which prompts really contain), DEL, the C1
# controls (U+0080..U+009F: 8-bit CSI/OSC on some terminals) and lone surrogates
# (bytes that were not UTF-8, which no stream can encode).
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# What JSON with ensure_ascii=False leaves raw of the above: it escapes only U+0000..U+001F.
_HIDDEN_IN_JSON = re.compile("[\x7f-\x9f\ud800-\udfff]")


def visible(text: Any) -> str:
    """``text`` with control characters written as escapes (ESC -> ``\\x1b``), tab and newline kept."""
    return _HIDDEN.sub(_escape_char, str(text))


def markup(text: Any) -> str:
    """``text`` made safe to put inside a rich markup string (controls visible, brackets escaped)."""
    return escape(visible(text))


def json_text(data: Any, indent: int | None = 1, sort_keys: bool = False) -> str:
    """``data`` as JSON: non-ASCII text kept, but every control character escaped
    (``\\u009b``), so the JSON still decodes to exactly the same strings."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    return _HIDDEN_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escape_char(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
