"""The web studio: a Streamlit shell over the library (engine, job queue, gallery).

``config`` says which model and folders the studio serves, ``service`` holds the
one engine and job queue all browser sessions share, ``form`` maps the Create
page's widgets to a ``GenerationRequest`` and back; the ``ui_*`` modules and the
scripts ``app.py`` / ``pages/*.py`` are the Streamlit views. Start it with
``nano-banana studio``.
"""

from __future__ import annotations

from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")

__all__ = ["APP_PATH"]
