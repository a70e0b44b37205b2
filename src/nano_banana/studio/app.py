"""Nano-Banana Studio: the Streamlit entry script (``nano-banana studio`` runs it).

It only sets up the page and the navigation; each page lives in ``pages/`` and
draws itself with the ``ui_*`` modules.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nano_banana.studio.auth import require_token
from nano_banana.studio.config import StudioConfig
from nano_banana.studio.ui_common import keep_form_state

HERE = Path(__file__).parent

st.set_page_config(page_title="Nano-Banana Studio", page_icon="🍌", layout="wide")
require_token(StudioConfig.token_from_env())
keep_form_state()
page = st.navigation(
    [
        st.Page(
            HERE / "pages" / "create.py",
            title="Create",
            icon=":material/auto_awesome:",
            default=True,
        ),
        st.Page(HERE / "pages" / "gallery.py", title="Gallery", icon=":material/photo_library:"),
    ],
    position="top",
)
page.run()
