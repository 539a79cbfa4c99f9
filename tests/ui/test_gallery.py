"""The gallery page under AppTest: grid newest first, paging, filters, details, rerun, branch, delete."""

from __future__ import annotations

from datetime import date, timedelta


def _gallery(kit):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(kit_root() / "streamlit_app.py"), default_timeout=30)
    at.run()
    at.switch_page(kit.GALLERY).run()
    assert not at.exception, at.exception
    return at


def kit_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def _cards(at) -> list[int]:
    """Generation ids of the cards on the page, in order."""
    return [int(m.value.split("**")[1].lstrip("#")) for m in at.markdown if m.value.startswith("**#")]


def _pager(at) -> str:
    return next(m.value for m in at.markdown if "page " in m.value and " of " in m.value)


def test_grid_newest_first_and_paged(kit):
    ids = [kit.finished_generation(seed=i).id for i in range(14)]
    at = _gallery(kit)
    assert _cards(at) == ids[::-1][:12]
    assert "page 1 of 2 · 14 generations" in _pager(at)
    assert len(at.image) == 12  # a thumbnail per card
    at.button(key="g.next").click().run()
    assert _cards(at) == ids[::-1][12:]
    assert at.button(key="g.next").disabled
    at.button(key="g.prev").click().run()
    assert _cards(at) == ids[::-1][:12]


def test_filters_template_status_backend_text_date(kit, db_url, monkeypatch):
    if db_url is not None:  # the studio's store on PostgreSQL (case-insensitive text, dates with a time zone)
        monkeypatch.setenv("VIVIDFLOW_DB_URL", db_url)
    a = kit.finished_generation("animals", prompt_word="zebra").id
    b = kit.finished_generation("landscape").id
    c = kit.finished_generation("animals", status="failed").id
    d = kit.finished_generation("product", backend="wan").id
    at = _gallery(kit)
    assert kit.store().url.startswith("postgresql" if db_url else "sqlite")
    assert sorted(_cards(at)) == sorted([a, b, c, d])

    at.multiselect(key="g.templates").set_value(["animals"]).run()
    assert sorted(_cards(at)) == sorted([a, c])
    at.multiselect(key="g.statuses").set_value(["succeeded"]).run()
    assert _cards(at) == [a]
    at.multiselect(key="g.templates").set_value([]).run()
    at.multiselect(key="g.statuses").set_value([]).run()
    at.multiselect(key="g.backends").set_value(["wan"]).run()
    assert _cards(at) == [d]
    at.multiselect(key="g.backends").set_value([]).run()
    at.text_input(key="g.text").set_value("ZEBRA").run()
    assert _cards(at) == [a]
    at.text_input(key="g.text").set_value("").run()
    today = date.today()
    at.date_input(key="g.dates").set_value((today - timedelta(days=1), today + timedelta(days=1))).run()
    assert len(_cards(at)) == 4
    at.date_input(key="g.dates").set_value((today - timedelta(days=9), today - timedelta(days=2))).run()
    assert _cards(at) == []
    assert any("No generations match" in i.value for i in at.info)
    assert not at.exception


def test_details_show_parameters_timings_and_lineage(kit):
    parent = kit.finished_generation("landscape", seed=11)
    child = kit.finished_generation("landscape", seed=12, parent_id=parent.id)
    at = _gallery(kit)
    at.button(key=f"g.open.{child.id}").click().run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert f"#{child.id} · Landscape" in " ".join(h.value for h in at.subheader)
    for expected in ("| seed | 12 (new) |", "| steps |", "guidance (high / low noise)", "| size | 624×624 |",
                     "| render | 500 ms |", "| model | preview-warp-1 |"):
        assert expected in text, expected
    assert at.button(key=f"g.lineage.{child.id}.{parent.id}")  # the parent is one click away
    at.button(key=f"g.lineage.{child.id}.{parent.id}").click().run()
    assert f"#{parent.id} ·" in " ".join(h.value for h in at.subheader)
    assert at.button(key=f"g.lineage.{parent.id}.{child.id}")  # and its child
    assert at.get("video")
    assert at.get("download_button")


def test_rerun_and_rerun_with_new_seed_make_children(kit):
    g = kit.finished_generation("animals", seed=99)
    at = _gallery(kit)
    at.button(key=f"g.open.{g.id}").click().run()
    at.button(key=f"g.rerun.{g.id}").click().run()
    assert not at.exception
    s = kit.store()
    children = s.lineage(g.id).children
    assert len(children) == 1
    same = children[0]
    assert same.parent_id == g.id and same.seed == 99 and same.plan == g.plan and same.backend == "preview"
    assert any(f"Queued #{same.id}" in x.value for x in at.success)
    at.button(key=f"g.reseed.{g.id}").click().run()
    children = s.lineage(g.id).children
    assert len(children) == 2 and children[1].seed != 99
    assert {k: v for k, v in children[1].plan.items() if k not in ("seed", "seed_policy")} == \
        {k: v for k, v in g.plan.items() if k not in ("seed", "seed_policy")}
    for child in children:
        assert kit.wait_terminal(child.id).status == "succeeded"


def test_delete_asks_then_removes_record_and_files(kit):
    g = kit.finished_generation()
    keep = kit.finished_generation()
    assert g.video_path.is_file() and g.thumbnail_path.is_file()
    at = _gallery(kit)
    at.button(key=f"g.open.{g.id}").click().run()
    at.button(key=f"g.delete.{g.id}").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key=f"g.keep.{g.id}").click().run()  # changed their mind
    assert kit.store().get_generation(g.id)
    at.button(key=f"g.delete.{g.id}").click().run()
    at.button(key=f"g.confirm.{g.id}").click().run()
    assert not at.exception
    from storage import NotFoundError

    s = kit.store()
    try:
        s.get_generation(g.id)
        raise AssertionError("still there")
    except NotFoundError:
        pass
    assert not g.video_path.exists() and not g.thumbnail_path.exists()
    assert keep.video_path.exists()
    assert _cards(at) == [keep.id]


def test_branch_into_chat_opens_plan_and_picture_in_a_new_conversation(kit):
    g = kit.finished_generation("landscape", seed=5)
    at = _gallery(kit)
    at.button(key=f"g.open.{g.id}").click().run()
    at.button(key=f"g.branch.{g.id}").click().run()
    assert not at.exception
    studio = at.session_state["studio"]
    assert studio.plan.to_dict() == g.plan
    assert studio.image is not None and studio.image.id == g.source_image_id
    assert studio.base_generation_id == g.id
    # the next render from this chat is a child of the branched generation
    assert at.selectbox(key=kit.key(at, "pp.template")).value == "landscape"
    at.button(key="res.generate").click().run()
    new = kit.store().get_generation(at.session_state["studio"].active_job_id)
    assert new.parent_id == g.id and new.conversation_id == studio.conversation_id
    kit.wait_terminal(new.id)


def test_deleting_a_queued_generation_takes_it_out_of_the_queue(kit):
    from agent.compiler import default_plan

    s = kit.store()
    image = s.add_image(kit.photo_bytes(max_side=64), filename="a.png")
    at = _gallery(kit)  # starts the runner for this data folder
    from ui.services import runner_for, wan_config
    from vividflow.settings import load_settings

    settings = load_settings()
    runner = runner_for(str(settings.home), wan_config(settings))
    plan = default_plan("abstract", seed=1).with_changes(duration_s=5.0)
    first = runner.submit(plan, image.id, backend="preview")
    second = runner.submit(plan, image.id, backend="preview")
    at.run()
    assert any("queued or rendering" in c.value for c in at.caption)
    at.button(key=f"g.open.{second.id}").click().run()
    at.button(key=f"g.delete.{second.id}").click().run()
    at.button(key=f"g.confirm.{second.id}").click().run()
    assert not at.exception
    assert second.id not in runner.queued()
    runner.cancel(first.id)
    assert kit.wait_terminal(first.id).status == "cancelled"


def test_a_wan_render_says_its_recipe_and_what_the_negative_prompt_did():
    from ui.format import recipe_note

    assert recipe_note({"recipe": "lightning", "steps": 4, "negative_guidance": "nag"}) == (
        "lightning recipe, 4 steps · negative prompt through NAG (guidance 1)")
    assert recipe_note({"recipe": "base", "steps": 40, "negative_guidance": "cfg"}).endswith("classifier-free guidance")
    assert recipe_note({}) == "" and recipe_note(None) == ""  # a preview render has neither
