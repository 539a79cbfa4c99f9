"""Who is using the studio: the signed-in person (Streamlit's ``st.user``, when an OIDC login is configured in
``.streamlit/secrets.toml``), else the local user.

Minimal on purpose (branch ``users``): the studio's login gate and password are the ``studiosafe`` work, which
replaces this module; only :func:`current_user` must keep its meaning.
"""

from __future__ import annotations

import streamlit as st

from storage import LOCAL_USER


def current_user() -> str:
    """The signed-in person's e-mail (or login name), or ``"local"`` when nobody signed in."""
    info = st.user
    if not info.get("is_logged_in"):
        return LOCAL_USER
    for key in ("email", "preferred_username", "name", "sub"):
        value = info.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return LOCAL_USER
