"""Who may use the studio, decided before anything else is drawn (`gate()`), and who is using it (`current_user()`).

- Served on a loopback address (127.0.0.1, the shipped .streamlit/config.toml) and asked for as 127.0.0.1,
  localhost or [::1] (not another name, as DNS rebinding would): open, the user is "local".
- Sign-in configured: Streamlit's own `st.login` (OIDC, an `[auth]` table in .streamlit/secrets.toml) or a shared
  password (VIVIDFLOW_PASSWORD, checked in constant time, each failure answered after a growing delay and the
  client locked out meanwhile). Either one is then required, whatever the address.
- Served on any other address (or on every interface, the Streamlit default when no address is set) without
  sign-in: the studio refuses to serve and says how to fix it.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass

import streamlit as st
from streamlit import config as st_config

import storage

log = logging.getLogger(__name__)

K = "auth."
USER = K + "user"  # the name a password user signed in with
FAILURES = K + "failures"  # this session's failed attempts in a row
LOCAL_USER = storage.LOCAL_USER  # one name for "nobody signed in"
MAX_NAME_CHARS = 40
FIRST_DELAY_S = 1.0  # after the first wrong password; doubles after each further one
MAX_DELAY_S = 16.0
FORGET_AFTER_S = 15 * 60  # a client's failures are forgotten after this long without one

_sleep = time.sleep  # tests replace it
_clock = time.monotonic


# --- where the studio listens ------------------------------------------------------------------------


def served_address() -> str | None:
    """The address Streamlit listens on (server.address: config file, --server.address or
    STREAMLIT_SERVER_ADDRESS); None when unset, which means every interface."""
    value = st_config.get_option("server.address")
    return str(value).strip() or None if value is not None else None


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; False for anything else, including no address (all interfaces)."""
    if not address:
        return False
    text = address.strip().strip("[]").lower()
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


# --- how people sign in ------------------------------------------------------------------------------


def oidc_configured() -> bool:
    """An [auth] table in .streamlit/secrets.toml (Streamlit's st.login)."""
    from streamlit.errors import StreamlitSecretNotFoundError

    try:
        return bool(st.secrets.get("auth"))
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return False


def shared_password() -> str | None:
    """VIVIDFLOW_PASSWORD (settings.studio.password) as loaded when the session started, or None."""
    from ui.session_settings import startup_settings

    secret = startup_settings().studio.password
    return secret.get_secret_value() if secret is not None else None


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (of fixed-length digests, so the length is not revealed either)."""
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def failure_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th wrong password in a row (1, 2, 4, … up to 16)."""
    if failures <= 0:
        return 0.0
    return min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (failures - 1))


@dataclass
class _Client:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


class Lockouts:
    """Failed attempts per client address, shared by every session of the process: a second tab does not
    reset the delay. Only a dictionary lookup happens under the lock; nobody else waits for a sleep."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}

    def wait_left(self, client: str, now: float) -> float:
        with self._lock:
            c = self._clients.get(client)
            return max(0.0, c.locked_until - now) if c else 0.0

    def failed(self, client: str, now: float) -> int:
        with self._lock:
            for key in [k for k, c in self._clients.items() if now - c.last_failure > FORGET_AFTER_S]:
                del self._clients[key]
            c = self._clients.setdefault(client, _Client())
            c.failures += 1
            c.last_failure = now
            c.locked_until = now + failure_delay(c.failures)
            return c.failures

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


LOCKOUTS = Lockouts()
_refusal_logged = threading.Event()


def _client_key() -> str | None:
    """The connection's address, when Streamlit knows it (None in tests and behind some proxies)."""
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 - an older runtime without it: per-session delays only
        return None
    return f"ip:{ip}" if ip else None


def _password_form(expected: str) -> bool:
    state = st.session_state
    if state.get(USER):
        return True
    st.title("VividFlow studio")
    st.caption("This studio asks for the shared password (VIVIDFLOW_PASSWORD).")
    with st.form(K + "form"):
        name = st.text_input("Your name", key=K + "name", max_chars=MAX_NAME_CHARS,
                             help="Shown with your work; anyone with the password may use any name")
        given = st.text_input("Password", type="password", key=K + "password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return False
    client = _client_key()
    now = _clock()
    wait = LOCKOUTS.wait_left(client, now) if client else 0.0
    if wait > 0:
        st.error(f"Too many wrong passwords from here; try again in {wait:.0f} s.")
        return False
    name = " ".join((name or "").split())
    if not name:
        st.error("Please give a name (it is shown with your work).")
        return False
    if password_matches(given or "", expected):
        state[USER] = name
        state[FAILURES] = 0
        if client:
            LOCKOUTS.succeeded(client)
        log.info("studio: %r signed in with the shared password", name)
        st.rerun()
    failures = state[FAILURES] = int(state.get(FAILURES, 0)) + 1
    if client:
        failures = max(failures, LOCKOUTS.failed(client, now))
    log.warning("studio: wrong password (%d in a row%s)", failures, f" from {client}" if client else "")
    _sleep(failure_delay(failures))  # this session's script thread only; other sessions go on
    st.error("Wrong password.")
    return False


def _oidc_login() -> bool:
    if st.user.get("is_logged_in"):
        return True
    st.title("VividFlow studio")
    if importlib.util.find_spec("authlib") is None:
        st.error("Sign-in is configured in .streamlit/secrets.toml [auth], but Streamlit needs the Authlib package "
                 "for it: pip install 'Authlib>=1.3.2' and restart the studio.")
        return False
    providers = _providers()
    st.caption("Sign in to use this studio.")
    for provider in providers or [None]:
        label = f"Sign in with {provider}" if provider else "Sign in"
        if st.button(label, key=K + f"login.{provider or 'default'}", type="primary"):
            if provider:
                st.login(provider)
            else:
                st.login()
    return False


def _providers() -> list[str]:
    """Named providers ([auth.google], [auth.microsoft], …); empty for a single unnamed one."""
    section = st.secrets.get("auth") or {}
    return [name for name, value in section.items() if hasattr(value, "items")]


def refusal(address: str | None) -> str:
    where = f"address {address}" if address else "every network interface (no server.address is set)"
    return (
        f"This studio is set to listen on {where}, so other machines could reach it, and no sign-in is "
        "configured. It will not serve until one is: set VIVIDFLOW_PASSWORD (a shared password, at least 8 "
        "characters) or an [auth] table for st.login in .streamlit/secrets.toml, then restart it. To use it on "
        "this machine only, start it with --server.address 127.0.0.1 (the shipped .streamlit/config.toml does)."
    )


def allowed() -> bool:
    """May this session use the studio now? (Draws nothing.)"""
    if oidc_configured():
        return bool(st.user.get("is_logged_in"))
    if shared_password() is not None:
        return bool(st.session_state.get(USER))
    return is_loopback(served_address()) and host_is_local(request_host())


def request_host() -> str | None:
    """The Host header the browser sent (None without a request: tests, bare mode)."""
    try:
        return st.context.headers.get("Host")
    except Exception:  # noqa: BLE001 - no session client
        return None


def host_is_local(host: str | None) -> bool:
    """The page was asked for as 127.0.0.1, localhost or [::1] (any port). Another name pointing at this machine
    is how a web page elsewhere reaches a local server (DNS rebinding), so an open studio does not answer it."""
    if not host:
        return True
    name = host.strip()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return is_loopback(name)


def sign_in_page() -> None:
    """What a session that may not come in yet sees: the sign-in (st.login or the password) or the refusal."""
    if oidc_configured():
        _oidc_login()
        return
    expected = shared_password()
    if expected is not None:
        _password_form(expected)
        return
    address = served_address()
    if is_loopback(address):  # served locally but asked for under another name
        st.error(f"This studio answers to http://127.0.0.1 or http://localhost only (it was asked for as "
                 f"{_plain(str(request_host())[:80])}). To serve it under other names, set up sign-in "
                 "(VIVIDFLOW_PASSWORD or st.login) and a network address.", icon=":material/lock:")
        return
    message = refusal(address)
    if not _refusal_logged.is_set():  # the terminal says it too, once
        _refusal_logged.set()
        log.warning("%s", message)
    st.error(message, icon=":material/lock:")


def gate() -> bool:
    """Run first on every page: True when this session may use the studio. Otherwise the sign-in page (or the
    refusal to serve) is the only page there is, it has been drawn, and the caller should stop."""
    if allowed():
        return True
    st.navigation([st.Page(sign_in_page, title="VividFlow studio", default=True)], position="hidden").run()
    return False


def current_user() -> str:
    """Who is using this session: the OIDC e-mail (or subject), the name a password user gave, or "local"."""
    try:
        if st.user.get("is_logged_in"):
            return str(st.user.get("email") or st.user.get("sub") or "signed-in user")
    except Exception:  # noqa: BLE001 - st.user outside a script run
        pass
    return str(st.session_state.get(USER) or LOCAL_USER)


def render_account() -> None:
    """"Signed in as …" and Sign out, in the sidebar, when someone signed in."""
    if st.user.get("is_logged_in"):
        st.caption(f"Signed in as {_plain(current_user())}")
        if st.button("Sign out", key=K + "logout", icon=":material/logout:"):
            st.logout()
    elif st.session_state.get(USER):
        st.caption(f"Signed in as {_plain(current_user())}")
        if st.button("Sign out", key=K + "logout", icon=":material/logout:"):
            st.session_state.pop(USER, None)
            st.rerun()


def _plain(text: str) -> str:
    from ui.format import plain

    return plain(text)
