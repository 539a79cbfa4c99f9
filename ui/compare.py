"""Two generations side by side: both videos start together and stay in step, with what differs
between their plans listed between them (issue 17, "Compare").

`show_compare(store, a, b)` draws it anywhere: the gallery calls it for two ticked cards, the chat can
call it for "compare #3 and #5". The two players are Streamlit's own `st.video` (served from the media
endpoint, seekable); a few lines of JavaScript in `st.html` start them together, mirror play, pause and
seek from the left one to the right one, correct drift, and restart both together when both ended.
"""

from __future__ import annotations

import streamlit as st

from storage import GenerationRecord, NotFoundError, Store

from ui.format import backend_label, markdown_table, motion_summary, plan_differences, template_title
from ui.widgets import scoped

FROM_CHAT = "chat.compare"  # (a, b) asked for in the chat ("compare #3 and #5"), per conversation

SYNC_JS = """
<div style="display:flex;justify-content:center"><button type="button" id="{prefix}-play"
  aria-label="Play both videos from the start"
  style="padding:.35rem .9rem;border-radius:.5rem;border:1px solid #5B3CC4;background:#5B3CC4;color:#fff;
  cursor:pointer">&#9654; Play both from the start</button></div>
<script>
(() => {{
  const pick = (k) => document.querySelector('.st-key-{prefix}-' + k + ' video');
  const link = () => {{
    const a = pick('a'), b = pick('b');
    if (!a || !b) return false;
    if (a.dataset.vfSynced === b.src) return true;
    a.dataset.vfSynced = b.src;
    const both = [a, b];
    both.forEach(v => {{ v.muted = true; v.loop = false; }});
    const start = () => {{ both.forEach(v => {{ v.pause(); v.currentTime = 0; }});
                            Promise.all(both.map(v => v.play())).catch(() => {{}}); }};
    window['vfCompareStart_{prefix}'] = start;
    a.addEventListener('pause', () => {{ if (!a.ended) b.pause(); }});
    a.addEventListener('play', () => {{ if (b.paused && !b.ended) b.play().catch(() => {{}}); }});
    a.addEventListener('seeked', () => {{ if (a.currentTime < b.duration) b.currentTime = a.currentTime; }});
    both.forEach(v => v.addEventListener('ended', () => {{ if (a.ended && b.ended) start(); }}));
    const timer = setInterval(() => {{  // keep the right one in step with the left one while both play
      if (!a.isConnected) {{ clearInterval(timer); return; }}  // the view was closed
      if (!a.paused && !b.paused && a.currentTime < b.duration && Math.abs(a.currentTime - b.currentTime) > 0.08)
        b.currentTime = a.currentTime;
    }}, 500);
    const ready = () => a.readyState >= 2 && b.readyState >= 2;
    const go = () => ready() ? start() : setTimeout(go, 100);
    go();
    return true;
  }};
  let tries = 0;  // the players appear with the same page update; give up after ~30 s (no video)
  const wait = () => {{ if (!link() && ++tries < 200) setTimeout(wait, 150); }};
  wait();
  const button = document.getElementById('{prefix}-play');
  if (button) button.addEventListener('click', () => {{ const s = window['vfCompareStart_{prefix}']; if (s) s(); }});
}})();
</script>
"""


def _load(store: Store, generation_id: int) -> GenerationRecord | None:
    try:
        return store.get_generation(generation_id)
    except NotFoundError:
        st.warning(f"Generation #{generation_id} no longer exists.")
        return None


def _player(g: GenerationRecord, key: str) -> None:
    st.markdown(f"**#{g.id}** · {template_title(g.template)} · seed {g.seed}")
    st.caption(f"{motion_summary(g.plan, g.duration_s)} · {backend_label(g.backend)}")
    with st.container(key=key):
        if g.status == "succeeded" and g.video_path is not None and g.video_path.is_file():
            st.video(str(g.video_path), muted=True)
        else:
            st.warning(f"#{g.id} has no video to play ({g.status}).")


def show_compare(store: Store, gen_a_id: int, gen_b_id: int, *, key: str = "cmp") -> None:
    """#a and #b side by side, playing in step, and the differences of their plans between them.
    `key` names the view (two on one page need two keys)."""
    a, b = _load(store, gen_a_id), _load(store, gen_b_id)
    if a is None or b is None:
        return
    st.subheader(f"Compare #{a.id} and #{b.id}")
    left, middle, right = st.columns([5, 4, 5], gap="medium")
    with left:
        _player(a, f"{key}-a")
    with right:
        _player(b, f"{key}-b")
    with middle:
        diffs = plan_differences(a, b)
        if diffs:
            st.markdown("**What differs**")
            st.markdown(markdown_table([(what, f"{va} → {vb}") for what, va, vb in diffs],
                                       ("", f"#{a.id} → #{b.id}")))
        else:
            st.info("Same plan, seed and backend: only the render itself differs.")
        st.html(SYNC_JS.format(prefix=key), unsafe_allow_javascript=True)


def ask_from_chat(a: int, b: int) -> None:
    """Remember a compare the chat asked for (the reply's `compare`); the studio page draws it."""
    st.session_state[scoped(FROM_CHAT)] = (a, b)


def _close_from_chat() -> None:
    st.session_state.pop(scoped(FROM_CHAT), None)


def render_from_chat(store: Store) -> None:
    """The compare the chat asked for, with a Close button; nothing when none was asked for."""
    pair = st.session_state.get(scoped(FROM_CHAT))
    if pair is None:
        return
    with st.container(border=True):
        st.button("Close the comparison", icon=":material/close:", key=scoped("chat.compare_close"),
                  on_click=_close_from_chat)
        show_compare(store, *pair, key="chat-cmp")
