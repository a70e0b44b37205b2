"""Options read from data (files, JSON, the environment): unknown keys are an error, never ignored.

Every reader of a settings table calls ``reject_unknown`` before building its
dataclass, so a misspelt key fails loudly, names the closest known key, and
reads the same wherever it happens.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from .errors import InvalidSettingError


def reject_unknown(
    data: Mapping[str, Any],
    known: Iterable[str] | type,
    *,
    where: str,
    what: str = "setting",
    problem: str | None = None,
    advice: str | None = None,
    error: type[Exception] = InvalidSettingError,
) -> None:
    """Raise ``error`` if ``data`` has keys outside ``known`` (names, or a dataclass's fields).

    The message reads ``{where}: {problem} a, b (did you mean 'c'?); {advice}``;
    ``problem`` defaults to ``unknown {what}(s)``, ``advice`` to the list of known keys.
    """
    known = sorted(f.name for f in fields(known)) if isinstance(known, type) else sorted(known)
    unknown = sorted(set(data) - set(known))
    if not unknown:
        return
    problem = f"unknown {what}(s)" if problem is None else problem
    tail = f"known: {', '.join(known)}" if advice is None else advice
    raise error(
        f"{where}: {problem} {', '.join(unknown)}{_close_name_hint(unknown[0], known)}; {tail}"
    )


def _close_name_hint(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
