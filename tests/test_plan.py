"""The MotionPlan contract: fields, bounds on both sides, frames rule, JSON round-trip, schema."""

import json

import pytest

from agent.plan import (
    CAMERA_MOVES,
    LIMITS,
    MAX_SEED,
    SUBJECTS,
    TEMPLATE_IDS,
    Camera,
    Motion,
    MotionPlan,
    PlanError,
    clamp,
    frames_for,
)

CONTRACT_FIELDS = {
    "template", "motions", "camera", "atmosphere", "duration_s", "fps", "num_frames", "steps",
    "guidance_scale", "guidance_scale_2", "seed", "prompt", "negative_prompt",
}


def make(**kw):
    base = dict(
        template="fashion",
        motions=[{"subject": "hair", "action": "flow", "speed": 0.8, "intensity": 0.4}],
        camera={"move": "zoom_in", "speed": 0.5},
        atmosphere=["wind"],
        duration_s=3.0,
        steps=4,
        guidance_scale=1.0,
        guidance_scale_2=1.0,
        seed=1234,
        prompt="p",
        negative_prompt="n",
    )
    base.update(kw)
    return MotionPlan.create(**base)


def test_contract_enums_are_exactly_the_issue_lists():
    assert TEMPLATE_IDS == ("fashion", "portrait_subtle", "portrait_dynamic", "animals", "landscape",
                            "animation", "product", "abstract")
    assert set(SUBJECTS) == set(
        "hair head face eyes mouth hands body clothing animal tail ears wings water clouds sky trees grass "
        "flowers fire smoke snow rain particles light product background".split())
    assert set(CAMERA_MOVES) == set(
        "static zoom_in zoom_out pan_left pan_right tilt_up tilt_down orbit_left orbit_right dolly_in dolly_out".split())


def test_json_has_every_contract_field():
    data = make().to_dict()
    assert CONTRACT_FIELDS <= set(data)
    assert data["motions"] == [{"subject": "hair", "action": "flow", "speed": 0.8, "intensity": 0.4}]
    assert data["camera"] == {"move": "zoom_in", "speed": 0.5}
    assert data["fps"] == 16 and data["num_frames"] == 49


@pytest.mark.parametrize("duration,frames", [(0.5, 9), (1.0, 17), (3.0, 49), (5.0, 81), (2.2, 37)])
def test_frames_from_duration(duration, frames):
    assert frames_for(duration) == frames
    assert make(duration_s=duration).num_frames == frames


def test_round_trip_is_exact():
    plan = make(atmosphere=["wind", "golden hour light"], negative_terms=["hands"], prompt_override="x")
    text = plan.to_json()
    again = MotionPlan.from_json(text)
    assert again == plan
    assert again.to_json() == text
    assert json.loads(text)["num_frames"] == plan.num_frames


def test_plan_is_immutable_and_with_changes_returns_a_new_plan():
    plan = make()
    with pytest.raises(Exception):
        plan.seed = 5  # type: ignore[misc]
    changed = plan.with_changes(seed=5, duration_s=5.0)
    assert (changed.seed, changed.num_frames) == (5, 81)
    assert (plan.seed, plan.num_frames) == (1234, 49)
    assert changed.motions == plan.motions and changed.camera == plan.camera


BOUNDS = [
    ("duration_s", 0.5, 30.0, 0.49, 30.01),  # the whole video (#12 §2)
    ("steps", 4, 50, 3, 51),
    ("guidance_scale", 0.0, 20.0, -0.1, 20.5),
    ("guidance_scale_2", 0.0, 20.0, -0.1, 20.5),
    ("seed", 0, MAX_SEED, -1, MAX_SEED + 1),
]


@pytest.mark.parametrize("field,lo,hi,below,above", BOUNDS)
def test_top_level_bounds_both_sides(field, lo, hi, below, above):
    assert getattr(make(**{field: lo}), field) == lo
    assert getattr(make(**{field: hi}), field) == hi
    for bad in (below, above):
        with pytest.raises(PlanError) as e:
            make(**{field: bad})
        msg = str(e.value)
        assert field in msg and "allowed range" in msg and repr(bad) in msg


@pytest.mark.parametrize("key,bad", [("speed", 0.0), ("speed", -1.0), ("speed", 5.5), ("intensity", -0.01),
                                     ("intensity", 1.01)])
def test_motion_bounds(key, bad):
    motion = {"subject": "hair", "action": "flow", "speed": 1.0, "intensity": 0.5, key: bad}
    with pytest.raises(PlanError, match=rf"motions\.0\.{key}.*allowed range"):
        make(motions=[motion])
    assert Motion(subject="hair", action="flow", speed=LIMITS["speed"][0], intensity=0.0).intensity == 0.0
    assert Motion(subject="hair", action="flow", speed=LIMITS["speed"][1], intensity=1.0).intensity == 1.0


@pytest.mark.parametrize("bad", [0.0, -0.5, 5.01])
def test_camera_speed_bounds(bad):
    with pytest.raises(PlanError, match=r"camera\.speed.*allowed range"):
        make(camera={"move": "pan_left", "speed": bad})


@pytest.mark.parametrize("patch,needle", [
    ({"template": "cinema"}, "template"),
    ({"camera": {"move": "spin", "speed": 1.0}}, "camera.move"),
    ({"motions": [{"subject": "tentacle", "action": "wave"}]}, "motions.0.subject"),
    ({"motions": [{"subject": "hair", "action": ""}]}, "motions.0.action"),
    ({"fps": 24}, "fps"),
    ({"colour": "red"}, "colour"),
    ({"motions": [{"subject": "hair", "action": "a"}, {"subject": "hair", "action": "b"}]}, "hair"),
])
def test_invalid_values_name_the_field(patch, needle):
    with pytest.raises(PlanError) as e:
        make(**patch)
    assert needle in str(e.value)


def test_num_frames_in_json_must_agree_with_duration():
    data = make().to_dict()
    MotionPlan.from_dict(data)  # consistent: fine
    data["num_frames"] = 50
    with pytest.raises(PlanError, match="num_frames"):
        MotionPlan.from_dict(data)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "{}"])
def test_from_json_rejects_non_plans_clearly(text):
    with pytest.raises(PlanError):
        MotionPlan.from_json(text)


def test_schema_export_lists_the_contract():
    schema = MotionPlan.json_schema()
    assert CONTRACT_FIELDS <= set(schema["properties"])
    assert schema["properties"]["duration_s"]["minimum"] == 0.5
    assert schema["properties"]["duration_s"]["maximum"] == 30.0
    assert schema["properties"]["steps"]["minimum"] == 4 and schema["properties"]["steps"]["maximum"] == 50
    assert "num_frames" in schema["required"]
    json.dumps(schema)  # serialisable


def test_clamp_uses_the_limits_table():
    assert clamp("duration_s", 31) == 30.0 and clamp("duration_s", 0.1) == 0.5 and clamp("steps", 8) == 8


def test_defaults_are_valid():
    plan = MotionPlan.create(template="landscape")
    assert plan.camera == Camera() and plan.motions == () and plan.num_frames == 49
