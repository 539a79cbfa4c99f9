"""Small text helpers shared by the widgets: labels, times, parameter tables. No Streamlit here."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from storage import GenerationRecord

# Markdown (and Streamlit's extensions: LaTeX, :colour[...] directives, :material/…: icons) that `plain` escapes
_ESCAPED = frozenset("\\`*_[]<>|~$&@")  # and ":" before a non-space (http:, :red[, :material/…:)
_COLON = re.compile(r":(?=\S)")
# Streamlit's Markdown also links bare URLs and e-mail addresses *after* parsing, where escapes are gone: an
# invisible WORD JOINER (U+2060) inside "://", "www." and after "@" keeps them plain text.
JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)")
_LIST_ITEM = re.compile(r"^([ \t]*)(\d+)([.)])", re.MULTILINE)
_LINE_MARK = re.compile(r"^([ \t]*)([-+=#])", re.MULTILINE)


def plain(text: object) -> str:
    """`text` for st.markdown / st.caption / st.error … so that it shows as typed: no image is fetched, no link,
    HTML, heading, list, emphasis, LaTeX or colour. Use it for everything a person typed (chat, prompts, terms,
    file names) and for messages that may quote it; line breaks are kept."""
    escaped = "".join("\\" + ch if ch in _ESCAPED else ch for ch in str(text))
    escaped = _COLON.sub(r"\\:", escaped)
    escaped = _AUTOLINK.sub(JOINER, escaped)
    escaped = _LIST_ITEM.sub(lambda m: f"{m.group(1)}{m.group(2)}\\{m.group(3)}", escaped)
    escaped = _LINE_MARK.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped)
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


STATUS_ICONS = {  # Streamlit's bundled Material Symbols: they render the same in every browser
    "queued": ":material/schedule:",
    "running": ":material/autorenew:",
    "succeeded": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}

PREVIEW_NOTE = "a quick CPU motion sketch, not the Wan video model"  # said wherever a preview is shown

BACKEND_LABELS = {
    "preview": f"preview ({PREVIEW_NOTE})",
    "wan": "Wan2.2 image-to-video",
}


@cache
def template_titles() -> dict[str, str]:
    from agent.templates import all_templates

    return {t.id: t.title for t in all_templates()}


def template_title(template_id: str | None) -> str:
    if template_id is None:
        return "—"
    return template_titles().get(template_id, template_id)


def status_label(status: str) -> str:
    return f"{STATUS_ICONS.get(status, '')} {status}".strip()


def backend_label(backend: str, model_id: str | None = None) -> str:
    """'preview' is always spelled out as a preview: it is not the video model."""
    base = BACKEND_LABELS.get(backend, backend)
    if backend == "preview" or not model_id:
        return base
    return f"{base} · {model_id}"


def local_time(when: datetime | None) -> str:
    if when is None:
        return "—"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 90:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def eta_text(eta_s: float | None) -> str:
    if eta_s is None:
        return ""
    return f"about {seconds(max(eta_s, 0.0))} left"


def elapsed(record: GenerationRecord) -> float | None:
    if record.started_at is None:
        return None
    end = record.finished_at or datetime.now(UTC)
    return max(0.0, (end - record.started_at).total_seconds())


def card_caption(g: GenerationRecord) -> str:
    """One line under a gallery thumbnail."""
    parts = [f"**#{g.id}**", plain(template_title(g.template)), status_label(g.status)]
    return " · ".join(parts)


def card_subcaption(g: GenerationRecord) -> str:
    backend = "preview" if g.backend == "preview" else g.backend
    dur = f"{g.duration_s:g} s" if g.duration_s is not None else "?"
    return plain(f"{backend} · {dur} · seed {g.seed} · {local_time(g.created_at)[:16]}")


def motion_summary(plan: dict[str, Any] | None, duration_s: float | None = None) -> str:
    """What moves and how, in one line: "hair 0.48× · orbit right · 5 s" (a gallery card's caption)."""
    plan = plan or {}
    parts = [f"{m.get('subject', '?')} {float(m.get('speed', 1.0)):g}×" for m in plan.get("motions", [])]
    camera = plan.get("camera") or {}
    move = camera.get("move", "static")
    if move and move != "static":
        speed = float(camera.get("speed", 1.0))
        parts.append(move.replace("_", " ") + (f" {speed:g}×" if speed != 1.0 else ""))
    duration = duration_s if duration_s is not None else plan.get("duration_s")
    if duration is not None:
        parts.append(f"{float(duration):g} s")
    return " · ".join(parts) or "no motion"


NEGATIVE_GUIDANCE = {
    "nag": "negative prompt through NAG (guidance 1)",
    "cfg": "negative prompt through classifier-free guidance",
    "cfg+nag": "negative prompt through CFG and NAG",
    "none": "negative prompt not used",
}


def recipe_note(params: dict[str, Any] | None) -> str:
    """How a Wan render sampled, in words: the recipe and what the negative prompt did ("" for the preview)."""
    params = params or {}
    parts = []
    if params.get("recipe"):
        parts.append(f"{params['recipe']} recipe, {params.get('steps', '?')} steps")
    if params.get("negative_guidance") in NEGATIVE_GUIDANCE:
        parts.append(NEGATIVE_GUIDANCE[params["negative_guidance"]])
    return " · ".join(parts)


def parameter_rows(g: GenerationRecord) -> list[tuple[str, str]]:
    """Every parameter needed to reproduce the generation, as (name, value) rows."""
    plan = g.plan or {}
    camera = plan.get("camera") or {}
    rows: list[tuple[str, str]] = [
        ("template", f"{template_title(g.template)} ({g.template})"),
        ("seed", f"{g.seed} ({plan.get('seed_policy', '?')})"),
        ("steps", str(g.steps)),
        ("guidance (high / low noise)", f"{g.guidance_scale:g} / {g.guidance_scale_2:g}" if g.guidance_scale is not None and g.guidance_scale_2 is not None else "—"),
        ("duration", f"{g.duration_s:g} s · {g.num_frames} frames at {g.fps} fps" if g.duration_s is not None else "—"),
        ("size", f"{g.width}×{g.height}" if g.width and g.height else "—"),
        ("camera", f"{camera.get('move', '—')} at {camera.get('speed', 1.0):g}×"),
        ("motions", ", ".join(f"{m['subject']} {m['action']} ({m['speed']:g}×, intensity {m['intensity']:g})" for m in plan.get("motions", [])) or "none"),
        ("atmosphere", ", ".join(plan.get("atmosphere", [])) or "none"),
        ("backend", backend_label(g.backend, g.model_id)),
        ("model", g.model_id or "—"),
        ("attempts", str(g.attempts)),
        ("created", local_time(g.created_at)),
        ("started", local_time(g.started_at)),
        ("finished", local_time(g.finished_at)),
    ]
    if plan.get("loop") or plan.get("end_image"):  # end frame and loop (#12 §1)
        rows.append(("ends on", "its first frame (seamless loop)" if plan.get("loop")
                     else f"the end picture {str(plan['end_image'])[:12]}…"))  # cells are plain text
    if g.batch_id:  # variations (#12 §3)
        rows.append(("batch", f"{g.batch_id[:12]} (variations with different seeds)"))
    if note := recipe_note(g.params):
        rows.append(("sampling", note))
    for key in ("lora", "loras", "quantization", "dtype", "device"):
        if key in (g.params or {}):
            rows.append((key, _short((g.params or {})[key])))
    return rows


SAME_FOR_COMPARE = {"created", "started", "finished", "attempts"}  # not part of what was rendered


def plan_differences(a: GenerationRecord, b: GenerationRecord) -> list[tuple[str, str, str]]:
    """(what, value in a, value in b) for every parameter that differs between two generations, the
    motion summary and the prompt included: what to look for when the two play side by side."""
    rows = [("motion", motion_summary(a.plan, a.duration_s), motion_summary(b.plan, b.duration_s))]
    ra, rb = dict(parameter_rows(a)), dict(parameter_rows(b))
    rows += [(name, ra.get(name, "—"), rb.get(name, "—")) for name in dict.fromkeys([*ra, *rb])
             if name not in SAME_FOR_COMPARE]
    rows.append(("prompt", a.prompt or "—", b.prompt or "—"))
    return [r for r in rows if r[1] != r[2]]


def timing_rows(g: GenerationRecord) -> list[tuple[str, str]]:
    rows = []
    for key, value in (g.timings or {}).items():
        name = key.removesuffix("_s").replace("_", " ")
        rows.append((name, seconds(value) if isinstance(value, int | float) else _short(value)))
    total = elapsed(g)
    if total is not None:
        rows.append(("wall clock (start → finish)", seconds(total)))
    return rows


def markdown_table(rows: list[tuple[str, str]], header: tuple[str, str] = ("", "")) -> str:
    def cell(text: str) -> str:  # every cell as plain text (prompts and terms are typed by people)
        return plain(str(text).replace("\r", " ").replace("\n", " "))

    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {cell(k)} | {cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
