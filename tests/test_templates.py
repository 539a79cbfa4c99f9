"""The template library: all eight categories, valid, and each compiles to a valid plan."""

import pytest

from agent.compiler import default_plan
from agent.plan import TEMPLATE_IDS, MotionPlan
from agent.templates import MIN_PROMPTS, all_templates, get_template, library, load_library


def test_every_category_is_there_once():
    assert [t.id for t in all_templates()] == list(TEMPLATE_IDS)


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
def test_template_compiles_to_a_valid_plan(template_id):
    t = get_template(template_id)
    assert len(t.prompts) >= MIN_PROMPTS and len(set(t.prompts)) == len(t.prompts)
    assert t.title and t.description and t.when
    plan = default_plan(t.id, seed=42)
    assert MotionPlan.from_json(plan.to_json()) == plan
    assert plan.template == template_id and plan.seed == 42
    assert (plan.steps, plan.guidance_scale, plan.guidance_scale_2) == (t.steps, *t.guidance)
    assert plan.prompt and plan.negative_prompt
    for term in t.negative_prompt.split(","):
        assert term.strip() in plan.negative_prompt
    assert plan.motions == t.motions and plan.camera == t.camera


def test_fashion_is_facial_only():
    t = get_template("fashion")
    assert not any(m.subject in ("hands", "body") for m in t.motions)
    for word in ("hands", "arms", "extra limbs"):
        assert word in t.negative_prompt


def test_product_negative_guards_against_deformation():
    assert {"deformation", "melting"} <= {w.strip() for w in get_template("product").negative_prompt.split(",")}


def test_library_is_loaded_once(monkeypatch):
    import agent.templates

    loads = []
    monkeypatch.setattr(agent.templates, "load_library", lambda: loads.append(1) or load_library())
    library.cache_clear()
    try:
        assert library().get("fashion") == library().get("fashion") and len(loads) == 1
    finally:
        library.cache_clear()


def test_broken_library_file_is_refused(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('[common]\nnegative_prompt = "x"\n[[template]]\nid = "fashion"\n')
    with pytest.raises(ValueError, match="invalid template library"):
        load_library(bad)
    with pytest.raises(KeyError, match="unknown template"):
        library().get("cinema")
