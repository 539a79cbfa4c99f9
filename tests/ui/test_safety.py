"""The studio is safe to leave running (issue 11 §5): who may use it (ui.auth), typed text shown as text
(ui.format.plain), what the server loads is read-only (test_settings.py), and errors end in a friendly box
with a reference into the log (ui.boundary), never a traceback."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
PASSWORD = "correct horse battery"


def _run(path: str = APP, **attrs):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(path, default_timeout=30)
    for name, value in attrs.items():
        setattr(at, name, value)
    return at.run()


def _texts(at) -> str:
    """Everything the page shows as text, in one string."""
    parts = [e.value for kind in ("markdown", "caption", "error", "info", "warning", "success", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def sleeps(monkeypatch):
    """The delays the password gate asks for (not slept)."""
    import ui.auth

    asked: list[float] = []
    monkeypatch.setattr(ui.auth, "_sleep", asked.append)
    return asked


# --- where it listens and who may come in -------------------------------------------------------------


def test_the_shipped_config_binds_loopback_hides_error_details_and_limits_uploads():
    from ui.create import MAX_UPLOAD_MB

    shipped = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert shipped["server"]["address"] == "127.0.0.1"
    assert shipped["server"]["maxUploadSize"] == MAX_UPLOAD_MB  # the server refuses larger files itself
    assert shipped["client"]["showErrorDetails"] == "none"  # not "false": that still shows the traceback
    assert shipped["logger"]["enableRich"] is False  # errors it catches itself are logged (ui.boundary), not printed


def test_vividflow_studio_started_elsewhere_still_binds_loopback(tmp_path):
    from vividflow.cli import studio_command

    app = ROOT / "streamlit_app.py"
    elsewhere = studio_command(app, ["--server.port", "9000"], tmp_path, {})  # no .streamlit/config.toml there
    flags = dict(zip(elsewhere[5::2], elsewhere[6::2], strict=False))
    assert flags["--server.address"] == "127.0.0.1" and flags["--client.showErrorDetails"] == "none"
    assert flags["--server.maxUploadSize"] == "50" and elsewhere[-2:] == ["--server.port", "9000"]
    chosen = studio_command(app, ["--server.address=0.0.0.0"], tmp_path, {"STREAMLIT_SERVER_MAX_UPLOAD_SIZE": "5"})
    assert "--server.address" not in chosen and "--server.maxUploadSize" not in chosen  # the person's choice wins
    assert studio_command(app, [], ROOT, {})[-1] == str(app)  # in the checkout the shipped config is read as is


def test_an_upload_over_the_limit_is_refused_before_it_is_decoded(monkeypatch):
    import generation.image
    from ui.create import MAX_UPLOAD_MB, UploadError, check_upload

    decoded = []
    monkeypatch.setattr(generation.image, "open_image", lambda *a, **k: decoded.append(a))
    with pytest.raises(UploadError, match=f"pictures up to {MAX_UPLOAD_MB} MB are accepted"):
        check_upload(bytes(MAX_UPLOAD_MB * 2**20 + 1), "big.png")
    assert decoded == []  # not even opened


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("studio.example.org", False), (None, False),
    ("", False),
])
def test_which_addresses_are_loopback(address, loopback):
    from ui.auth import is_loopback

    assert is_loopback(address) is loopback


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1:8501", True), ("localhost:8501", True), ("[::1]:8501", True), ("localhost", True), (None, True),
    ("rebind.example:8501", False), ("192.168.1.20:8501", False), ("[2001:db8::1]:8501", False),
    ("127.0.0.1.evil.example", False),
])
def test_an_open_studio_answers_only_to_loopback_names(host, local):
    from ui.auth import host_is_local

    assert host_is_local(host) is local


def test_the_loopback_default_serves_without_sign_in(app):
    from ui.auth import current_user, served_address

    assert served_address() == "127.0.0.1"  # from .streamlit/config.toml
    assert app.chat_input and not app.error
    assert not any(b.label == "Sign in" for b in app.button)
    assert current_user() == "local"  # no sign-in: one local person


@pytest.mark.parametrize("address", ["192.168.1.20", None])  # None: every interface
def test_a_network_address_without_sign_in_refuses_to_serve(address):
    from streamlit.testing.v1.util import patch_config_options

    with patch_config_options({"server.address": address}):
        for page in (APP, str(ROOT / "pages" / "gallery.py")):
            at = _run(page)
            assert not at.exception
            assert len(at.error) == 1 and "will not serve" in at.error[0].value
            assert "VIVIDFLOW_PASSWORD" in at.error[0].value and "127.0.0.1" in at.error[0].value
            # nothing else: no chat, no picture, no gallery, no sidebar
            assert not at.chat_input and not at.button and not at.sidebar.children
            assert not at.markdown and not at.title


def test_the_password_gate_refuses_wrong_passwords_with_a_growing_delay_then_lets_in(monkeypatch, sleeps):
    from streamlit.testing.v1.util import patch_config_options

    monkeypatch.setenv("VIVIDFLOW_PASSWORD", PASSWORD)
    with patch_config_options({"server.address": "0.0.0.0"}):  # sign-in configured: serving on a network is fine
        at = _run()
        assert not at.exception and not at.chat_input  # the form only
        assert at.text_input(key="auth.password").proto.type == at.text_input(key="auth.password").proto.PASSWORD

        def attempt(password: str):
            at.text_input(key="auth.name").set_value("Ann")
            at.text_input(key="auth.password").set_value(password)
            next(b for b in at.button if b.label == "Sign in").click()
            return at.run()

        attempt("correct horse")
        assert [e.value for e in at.error] == ["Wrong password."] and not at.chat_input
        attempt(PASSWORD.upper())
        assert sleeps == [1.0, 2.0]  # after each failure, longer each time
        assert PASSWORD not in _texts(at)  # never echoed
        attempt(PASSWORD)
        assert not at.exception and not at.error
        assert at.chat_input  # the studio
        assert "Signed in as Ann" in " ".join(c.value for c in at.sidebar.caption)
        assert at.session_state["auth.user"] == "Ann"
        assert sleeps == [1.0, 2.0]  # no delay for the right one
        next(b for b in at.sidebar.button if b.label == "Sign out").click()
        at.run()
        assert not at.chat_input and at.text_input(key="auth.password")


def test_passwords_are_compared_in_constant_time_on_digests():
    from ui.auth import password_matches

    assert password_matches(PASSWORD, PASSWORD) and not password_matches(PASSWORD[:-1], PASSWORD)
    assert not password_matches("", PASSWORD)


def test_failures_lock_a_client_out_for_a_growing_while_and_are_forgotten():
    from ui.auth import FORGET_AFTER_S, Lockouts, failure_delay

    assert [failure_delay(n) for n in range(0, 8)] == [0, 1, 2, 4, 8, 16, 16, 16]
    locks = Lockouts()
    assert locks.wait_left("ip:10.0.0.9", 0.0) == 0
    assert locks.failed("ip:10.0.0.9", 100.0) == 1 and locks.wait_left("ip:10.0.0.9", 100.5) == 0.5
    assert locks.failed("ip:10.0.0.9", 102.0) == 2 and locks.wait_left("ip:10.0.0.9", 102.0) == 2.0
    assert locks.wait_left("ip:10.0.0.7", 102.0) == 0  # another client is not slowed down
    locks.failed("ip:10.0.0.7", 102.0 + FORGET_AFTER_S + 1)  # a much later failure elsewhere sweeps old ones
    assert locks.failed("ip:10.0.0.9", 102.0 + FORGET_AFTER_S + 2) == 1
    locks.succeeded("ip:10.0.0.9")
    assert locks.wait_left("ip:10.0.0.9", 0.0) == 0


def test_a_password_shorter_than_8_characters_is_a_settings_error_that_does_not_quote_it():
    from vividflow.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as e:
        load_settings(env={"VIVIDFLOW_PASSWORD": "hunter2"}, use_file=False)
    assert "hunter2" not in str(e.value) and "VIVIDFLOW_PASSWORD" in str(e.value)
    s = load_settings(env={"VIVIDFLOW_PASSWORD": PASSWORD}, use_file=False)
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.describe())


AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "vf",
        "client_secret": "s", "server_metadata_url": "https://id.example/.well-known/openid-configuration"}


def test_st_login_when_configured_then_the_user_is_their_email():
    from streamlit.testing.v1.util import patch_config_options

    with patch_config_options({"server.address": "0.0.0.0"}):
        at = _run(secrets={"auth": AUTH}, user={"is_logged_in": False})
        assert not at.exception and not at.chat_input  # signed out: only the sign-in
        import importlib.util

        if importlib.util.find_spec("authlib") is None:  # Streamlit needs it for st.login: said, not a crash
            assert "Authlib" in at.error[0].value
        else:
            assert any(b.label == "Sign in" for b in at.button)
        at = _run(secrets={"auth": AUTH}, user={"is_logged_in": True, "email": "ann@example.org", "sub": "123"})
        assert not at.exception and at.chat_input
        from ui.format import plain

        assert "Signed in as " + plain("ann@example.org") in " ".join(c.value for c in at.sidebar.caption)


# --- typed text is shown as text ------------------------------------------------------------------------

HOSTILE = [
    "![x](http://127.0.0.1:9/pixel.png) make her hair flow",
    "<img src=http://127.0.0.1:9/p.png onerror=alert(1)> hello",
    "[click](javascript:alert(1)) and [ref]: http://127.0.0.1:9/r",
    "see http://127.0.0.1:9/a and www.example.org or ann@example.org",
    "# heading\n1. one\n- two\n> quote\n***",
    "$x^2$ :red[red] **bold** _it_ `code` ~~gone~~ | a | b |",
    "a\\*b \\![y](http://127.0.0.1:9/q.png)",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_text_renders_as_typed_with_no_image_link_or_html(text):
    markdown_it = pytest.importorskip("markdown_it")
    from ui.format import JOINER, plain

    md = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])  # GFM but autolinks
    tokens = md.parse(plain(text))
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert kinds <= {"paragraph_open", "paragraph_close", "inline", "text", "hardbreak", "softbreak"}, kinds
    shown = "".join(c.content if c.type == "text" else "\n" for t in tokens for c in (t.children or []))
    assert shown.replace(JOINER, "") == text  # every character, as typed (and invisible joiners in URLs)


def test_a_markdown_image_in_chat_is_shown_as_literal_text(app, kit):
    from ui.format import plain

    text = HOSTILE[0]
    at = kit.chat(app, text)
    user = [m for m in at.chat_message if m.name == "user"][0]
    assert user.markdown[0].value == plain(text)
    chat = [e.value for m in at.chat_message for e in [*m.markdown, *m.caption]]
    assert len(chat) >= 2 and all(not re.search(r"(?<!\\)[\[\]<]", v) for v in chat), chat  # reply and diff too


def test_stored_prompts_and_file_names_are_shown_as_text_in_gallery_and_chat(app, kit):
    from ui.format import plain

    bad = "![x](http://127.0.0.1:9/g.png)"
    g = kit.finished_generation(prompt_word=bad)
    at = _run(str(ROOT / kit.GALLERY))
    at.button(key=f"g.open.{g.id}").click().run()
    assert not at.exception
    shown = _texts(at)
    assert plain(bad) in shown and bad not in shown.replace(plain(bad), "")
    at = kit.upload(app, name="![y](http:x).png")
    shown = _texts(at)
    assert plain("![y](http:x).png") in shown and "![y]" not in shown


# --- the error boundary --------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_friendly_box_with_a_log_reference_not_a_traceback(app, monkeypatch):
    import ui.chat
    from vividflow.logs import log_path

    def broken(studio, **_):
        raise RuntimeError("boom: internal detail 4711")

    monkeypatch.setattr(ui.chat, "render", broken)
    app.run()
    assert not app.exception  # nothing reached Streamlit's own handler
    (box,) = app.error
    assert "Something went wrong" in box.value and "logs/vividflow.log" in box.value and "reference" in box.value
    assert "4711" not in _texts(app) and "Traceback" not in _texts(app)
    assert app.chat_input  # the rest of the page is still there
    reference = box.value.rsplit("reference ", 1)[1].rstrip(").")
    log = log_path(os.environ["VIVIDFLOW_HOME"]).read_text()
    assert f"reference {reference}" in log and "Traceback" in log and "boom: internal detail 4711" in log


def test_an_error_in_a_widget_callback_shows_no_traceback_and_is_logged(app, monkeypatch):
    import ui.sidebar
    from vividflow.logs import log_path

    def broken() -> None:
        raise RuntimeError("callback detail 5150")

    monkeypatch.setattr(ui.sidebar, "_new_chat", broken)
    app.run()  # the button now calls the broken callback
    app.sidebar.button(key="sb.new").click().run()
    shown = " ".join(str(e.value) for e in app.exception) + _texts(app)
    assert "5150" not in shown and "Traceback" not in shown  # client.showErrorDetails = "none"
    assert "callback detail 5150" in log_path(os.environ["VIVIDFLOW_HOME"]).read_text()
