"""What a client and the server agree on: which model is meant, and whether a pid lives."""

from __future__ import annotations

import os

from ..generate.spec import EngineSpec


def model_key(spec: EngineSpec) -> dict:
    """The model part of a resolved spec, as plain data both sides compare.

    ``speed`` is left out: it is how the server runs, not which images it makes.
    """
    data = spec.resolve().to_dict()
    data.pop("speed", None)
    return data


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds the number: not our server
        return False
    return True
