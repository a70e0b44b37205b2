"""The studio's access token: Streamlit has no login of its own, so a studio others can reach
asks for a token before any page runs.

The token comes from ``nano-banana studio --token`` (or is made up and printed with the
address when the bind is not local). A browser gives it once, in the address
(``?token=...``, what the printed link carries) or in the form shown instead of the
pages; the session then remembers it. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import secrets

import streamlit as st

from .ui_common import plain

TOKEN_PARAM = "token"


def new_token() -> str:
    return secrets.token_urlsafe(18)


def token_matches(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def require_token(expected: str | None) -> None:
    """Stop the page run unless this session has shown the studio's token (if it has one)."""
    if not expected or st.session_state.get("_authorised"):
        return
    given = st.query_params.get(TOKEN_PARAM)
    if given is None:
        given = st.session_state.get("_token_typed")
    if token_matches(given, expected):
        st.session_state["_authorised"] = True
        return
    st.title("Nano-Banana Studio")
    st.text_input(
        "Access token",
        type="password",
        key="_token_typed",
        help="The studio was started with an access token; it is printed where it was started.",
    )
    if given is not None:
        st.error(
            f"That token is not this studio's ({plain('check the link or ask whoever runs it')})."
        )
    st.stop()
