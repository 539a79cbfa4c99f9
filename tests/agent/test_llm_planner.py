"""The LLM planner on a tiny random Qwen2 built here, loaded once through the production loader
(HF_HUB_OFFLINE=1), and on stand-in models that follow a script, raise or hang."""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from agent.compiler import default_plan
from agent.edits import ParseResult, ScaleMotion, SetDuration, edits_to_json, parse_edits
from agent.llm import (
    HybridPlanner,
    LLMConfig,
    LLMConfigError,
    LLMPlanner,
    LLMUnavailable,
    enhance_prompt,
    loaded_model,
    make_planner,
    unload_all,
)
from agent.llm.decoding import TIMEOUT_GRACE_S
from agent.llm.enhance import missing_elements
from agent.llm.grammar import edit_list_pattern
from agent.llm.grounding import is_grounded
from agent.llm.loading import load_model_and_tokenizer, resolve_source
from agent.llm.prompts import build_messages
from agent.plan import MotionPlan
from agent.rules import RulePlanner
from agent.session import new_conversation, plan_turn
from tests.agent.llm_fixtures import MESSAGES, RaisingModel, ScriptedModel, StuckModel, build_tiny_qwen

ROOT = Path(__file__).resolve().parents[2]
# A small answer budget: one edit per answer, 64 tokens (the grammar tests show every answer it allows parses).
SMALL = dict(max_edits=1, max_new_tokens=64)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """The tiny model and its tokenizer, loaded once per test run through the production loader."""
    loaded = load_model_and_tokenizer(LLMConfig(model=str(tiny_dir)))
    # What exists now (torch, transformers, this model) is never garbage: out of the collector's sight, the
    # gc.collect() of every unload takes microseconds instead of a third of a second.
    gc.freeze()
    return loaded


@pytest.fixture(scope="session")
def tiny_loader(tiny):
    """A loader that hands over the loaded tiny model (one function, so every planner shares the model)."""
    return lambda config: tiny


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny):
    return tiny[1]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One torch thread for this module's tests, restored afterwards (the tiny model's small ops on shared
    cores run several times faster on one thread)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _offline_and_clean(monkeypatch, request):
    """Offline, no VIVIDFLOW_LLM_* settings, and no model in memory, except the shared tiny one: tests that
    use it keep it loaded (with its compiled grammars and prefix caches) for the next one."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in LLMConfig.env_names.values():
        monkeypatch.delenv(name, raising=False)
    shared = "tiny_loader" in request.fixturenames
    if not shared:
        unload_all()
    yield
    if not shared:
        unload_all()


def tiny_planner(loader, **settings) -> LLMPlanner:
    return LLMPlanner(LLMConfig(model="tiny-qwen", **settings), loader=loader)


def planner_with(model, tokenizer, **settings) -> LLMPlanner:
    """An LLMPlanner whose loader hands over a stand-in model (same code path from there on)."""
    config = LLMConfig(model=f"stub-{id(model)}", **settings)
    return LLMPlanner(config, loader=lambda cfg: (model, tokenizer))


def fashion_plan() -> MotionPlan:
    return default_plan("fashion", seed=3)


def rules_only_turn(message: str, template: str | None = None, seed: int = 11):
    return plan_turn(new_conversation(template=template), message, rng=random.Random(seed))


def hybrid_turn(message: str, llm: LLMPlanner, template: str | None = None, seed: int = 11):
    return plan_turn(new_conversation(template=template), message, planner=HybridPlanner(RulePlanner(), llm),
                     rng=random.Random(seed))


# --- settings and loading --------------------------------------------------------------------------------


def test_config_reads_every_setting_from_the_environment_in_one_place():
    env = {
        "VIVIDFLOW_LLM_MODEL": "Qwen/Qwen2.5-1.5B-Instruct", "VIVIDFLOW_LLM_GGUF_FILE": "",
        "VIVIDFLOW_LLM_DEVICE": "CPU", "VIVIDFLOW_LLM_DTYPE": "bfloat16", "VIVIDFLOW_LLM_MAX_NEW_TOKENS": "300",
        "VIVIDFLOW_LLM_TIMEOUT_S": "7.5", "VIVIDFLOW_LLM_ENABLED": "yes", "VIVIDFLOW_LLM_MODE": "always",
        "VIVIDFLOW_LLM_MAX_EDITS": "3", "VIVIDFLOW_LLM_GROUNDED_ONLY": "0",
    }
    c = LLMConfig.from_env(env)
    assert (c.model, c.gguf_file, c.device, c.dtype, c.max_new_tokens, c.timeout_s, c.enabled, c.mode,
            c.max_edits, c.grounded_only) == ("Qwen/Qwen2.5-1.5B-Instruct", None, "cpu", "bfloat16", 300, 7.5,
                                              True, "always", 3, False)
    assert LLMConfig.from_env(env, timeout_s=2.0, model=None).timeout_s == 2.0  # flags win; None = not given
    d = LLMConfig()
    assert (d.model, d.timeout_s, d.mode, d.enabled, d.available) == (None, 20.0, "fallback_only", True, False)
    # every token is at least one character: the default budget always ends in a complete answer
    assert d.max_new_tokens > edit_list_pattern(d.grammar).max_chars


@pytest.mark.parametrize("env,needle", [
    ({"VIVIDFLOW_LLM_TIMEOUT_S": "soon"}, "VIVIDFLOW_LLM_TIMEOUT_S"),
    ({"VIVIDFLOW_LLM_TIMEOUT_S": "0"}, "VIVIDFLOW_LLM_TIMEOUT_S: timeout_s must be"),
    ({"VIVIDFLOW_LLM_MODE": "sometimes"}, "fallback_only, always"),
    ({"VIVIDFLOW_LLM_DEVICE": "tpu"}, "auto, cpu, cuda or cuda:N"),
    ({"VIVIDFLOW_LLM_ENABLED": "maybe"}, "VIVIDFLOW_LLM_ENABLED"),
    ({"VIVIDFLOW_LLM_MAX_NEW_TOKENS": "5"}, "16–4096"),
])
def test_bad_settings_name_the_variable_and_the_allowed_values(env, needle):
    with pytest.raises(LLMConfigError, match=needle):
        LLMConfig.from_env(env)


def test_model_sources(tmp_path):
    with pytest.raises(LLMUnavailable, match="does not exist"):
        resolve_source(str(tmp_path / "no-such-model"))
    with pytest.raises(LLMUnavailable, match="does not exist"):
        resolve_source(str(tmp_path / "weights.gguf"))
    assert resolve_source("Qwen/Qwen2.5-0.5B-Instruct") == ("Qwen/Qwen2.5-0.5B-Instruct", None)
    folder, name = resolve_source("smollm2")
    assert (Path(folder) / name).is_file() and name.endswith(".gguf")
    assert resolve_source(str(Path(folder) / name)) == (folder, name)


def test_a_missing_model_is_a_clear_unavailable_result_and_the_reply_says_the_rules_were_used(tmp_path):
    llm = LLMPlanner(LLMConfig(model=str(tmp_path / "nowhere")))
    out = llm.propose("make the hair flow", fashion_plan())
    assert out.status == "unavailable" and "nowhere" in out.message and "does not exist" in out.message
    state, reply = hybrid_turn("asdf qwerty", llm)
    rule_state, _ = rules_only_turn("asdf qwerty")
    assert state.plan == rule_state.plan
    assert "rule planner" in reply.text and "could not be loaded" in reply.text


def test_an_uncached_hub_id_fails_fast_offline():
    out = LLMPlanner(LLMConfig(model="nobody-here/not-a-model-xyz")).propose("hair", None)
    assert out.status == "unavailable" and "HF_HUB_OFFLINE" in out.message


def test_tiny_model_loads_through_the_production_loader_offline_and_unloads(tiny_dir):
    from transformers import Qwen2ForCausalLM

    llm = LLMPlanner(LLMConfig(model=str(tiny_dir)))
    assert loaded_model() is None and not llm.is_loaded
    llm.load()
    model = loaded_model()
    assert isinstance(model, Qwen2ForCausalLM) and llm.is_loaded
    assert str(next(model.parameters()).device) == "cpu" and next(model.parameters()).dtype.is_floating_point
    ref = weakref.ref(model)
    del model
    assert llm.unload() and loaded_model() is None
    gc.collect()
    assert ref() is None  # nothing else holds the weights


def test_at_most_one_model_per_process(tiny_dir):
    first = LLMPlanner(LLMConfig(model=str(tiny_dir), device="auto"))
    first.load()
    ref = weakref.ref(loaded_model())
    second = LLMPlanner(LLMConfig(model=str(tiny_dir), device="cpu"))
    second.load()  # another configuration: the first model goes before the second loads
    gc.collect()
    assert ref() is None and second.is_loaded and not first.is_loaded
    second.load()
    assert second.is_loaded  # same configuration: reused, not reloaded


# --- the random tiny model: always schema-valid ---------------------------------------------------------


def test_varied_messages_give_schema_valid_edits(tiny_loader):
    """Sampling (temperature 1) from the random model makes varied answers; every one must parse."""
    plan = fashion_plan()
    ops, non_empty = set(), 0
    messages = MESSAGES[::5]
    assert len(messages) == 10
    for i, message in enumerate(messages):
        llm = tiny_planner(tiny_loader, temperature=1.0, grounded_only=False, seed=i, **SMALL)
        out = llm.propose(message, plan if i % 3 else None, history=[("user", "hello"), ("assistant", "hi")])
        assert out.status == "ok", (message, out.status, out.message, out.text)
        again = parse_edits(json.loads(out.text))  # the raw answer itself is schema-valid JSON
        assert edits_to_json(again) == edits_to_json(out.edits) and len(again) <= 1
        ops |= {e.op for e in out.edits}
        non_empty += bool(out.edits)
    assert non_empty >= 5 and len(ops) >= 4  # the answers really exercise the schema


def test_an_answer_cut_off_by_the_budget_is_not_used(tiny_loader):
    out = tiny_planner(tiny_loader, temperature=1.0, grounded_only=False, max_new_tokens=16).propose(
        "make her hair flow in the wind, slow zoom in", fashion_plan())
    assert out.status == "invalid" and out.message == "answer cut off after 16 tokens" and out.edits == []


def test_the_prefix_cache_changes_nothing_but_the_work(tiny, tiny_loader):
    """The prompt's fixed part is computed once and copied into each call: the answers are those of a
    planner that runs the whole prompt every time, and every call starts after the prefix."""
    model, tokenizer = tiny

    class WholePrompt:  # the tiny model without `forward`: the planner then skips its prefix cache
        config, generation_config = model.config, model.generation_config
        parameters, generate = model.parameters, model.generate

    prompt_lengths: list[int] = []
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: prompt_lengths.append(kwargs["input_ids"].shape[1]),
                                           with_kwargs=True)
    try:
        cached = [tiny_planner(tiny_loader, **SMALL).propose("slower hair, same seed", fashion_plan()) for _ in range(2)]
        cached_steps = [n for n in prompt_lengths if n > 1]  # the prefix too, if no test computed it before
        prompt_lengths.clear()
        unload_all()
        whole = planner_with(WholePrompt(), tokenizer, **SMALL).propose("slower hair, same seed", fashion_plan())
        whole_steps = [n for n in prompt_lengths if n > 1]
    finally:
        hook.remove()
    assert cached[0].ok and cached[0].text == cached[1].text == whole.text
    # each cached call feeds only what follows the prefix; without the cache, the whole prompt
    assert cached_steps[-2] == cached_steps[-1] < whole_steps[0]


def test_hybrid_with_the_random_model_yields_a_valid_plan_every_time(tiny_loader):
    llm = tiny_planner(tiny_loader, temperature=1.0, mode="always", grounded_only=False, **SMALL)
    hybrid = HybridPlanner(RulePlanner(), llm)
    state, rng = new_conversation(), random.Random(5)
    used_llm = 0
    for i, message in enumerate(MESSAGES[::5]):
        if i % 5 == 0:
            state = new_conversation(template=None if i else "animals")
        state, reply = plan_turn(state, message, planner=hybrid, rng=rng)
        assert isinstance(state.plan, MotionPlan)
        assert MotionPlan.from_json(state.plan.to_json()) == state.plan  # valid and complete
        assert state.plan.prompt and reply.text
        used_llm += reply.planner in ("llm", "hybrid")
    assert used_llm >= 4


# --- stand-ins: the rule result stands when the model fails -------------------------------------------


def test_a_model_that_raises_leaves_the_rule_result_and_the_reply_says_so(tiny_tokenizer):
    stub = RaisingModel(tiny_tokenizer)
    llm = planner_with(stub, tiny_tokenizer, mode="always")
    state, reply = hybrid_turn("make her hair flow in the wind, slow zoom in", llm)
    rule_state, rule_reply = rules_only_turn("make her hair flow in the wind, slow zoom in")
    assert stub.calls == 1
    assert state.plan == rule_state.plan
    assert "the language model failed" in reply.text.lower() and "rule planner" in reply.text
    assert "CUDA out of memory" in reply.text


def test_a_model_that_hangs_times_out_and_the_rule_result_stands(tiny_tokenizer):
    stub = StuckModel(tiny_tokenizer)
    llm = planner_with(stub, tiny_tokenizer, mode="always", timeout_s=0.05)
    try:
        started = time.monotonic()
        state, reply = hybrid_turn("slower hair, new seed", llm, template="fashion")
        took = time.monotonic() - started
        rule_state, _ = rules_only_turn("slower hair, new seed", template="fashion")
        assert took < 0.05 + TIMEOUT_GRACE_S + 0.7
        assert state.plan == rule_state.plan
        assert "took too long" in reply.text and "0.05 s" in reply.text and "rule planner" in reply.text
        # The stuck call still holds the model: the next one does not pile on, it falls back too.
        out = llm.propose("hair", fashion_plan())
        assert out.status == "busy" and stub.calls == 1
    finally:
        stub.release()


def test_an_answer_that_breaks_the_plan_is_rejected(tiny_tokenizer, monkeypatch):
    import agent.llm.planner as mod

    def refuse(plan, edits):
        raise ValueError("duration_s: refused by the plan")

    monkeypatch.setattr(mod, "check_on_plan", refuse)
    llm = planner_with(ScriptedModel(tiny_tokenizer, '[{"op":"set_duration","seconds":4}]'), tiny_tokenizer)
    out = llm.propose("make it 4 seconds", fashion_plan())
    assert out.status == "invalid" and "refused by the plan" in out.message


def test_the_constraint_overrules_a_chatty_model(tiny_tokenizer):
    chatty = ScriptedModel(tiny_tokenizer, 'Sure! Here you go:\n```json\n[{"op": "undo"}]\n```')
    out = planner_with(chatty, tiny_tokenizer).propose("undo", fashion_plan())
    assert out.ok, out.message
    parse_edits(json.loads(out.text))  # whatever the script wanted, the answer is schema-valid JSON


def test_scripted_answer_is_parsed_grounded_and_merged_after_the_rules(tiny_tokenizer):
    answer = ('[{"op":"scale_motion","subject":"water","speed_factor":1.5,"intensity_factor":1.5},'
              '{"op":"add_motion","subject":"fire","action":"flicker","speed":1,"intensity":0.5}]')
    model = ScriptedModel(tiny_tokenizer, answer)
    llm = planner_with(model, tiny_tokenizer)
    plan = default_plan("landscape", seed=3)
    assert RulePlanner().parse("water go brrr", plan).edits == []  # the rules make nothing of it
    result = HybridPlanner(RulePlanner(), llm).parse("water go brrr", plan)
    assert [e.op for e in result.edits] == ["scale_motion"]  # fire is not in the message: dropped
    assert result.edits[0] == ScaleMotion(subject="water", speed_factor=1.5, intensity_factor=1.5)
    assert result.planner == "llm" and result.unparsed == []
    assert "Message: water go brrr" in model.prompts[-1]

    # A message the rules understand fully: the model is not asked at all.
    calls = len(model.prompts)
    ruled = HybridPlanner(RulePlanner(), llm).parse("make it 4 seconds", plan)
    assert len(model.prompts) == calls and ruled.planner == "rules" and ruled.edits == [SetDuration(seconds=4)]


def test_always_mode_lets_the_model_lead_and_the_rules_fill_in(tiny_tokenizer):
    answer = '[{"op":"scale_motion","subject":"hair","speed_factor":0.4,"intensity_factor":1}]'
    llm = planner_with(ScriptedModel(tiny_tokenizer, answer), tiny_tokenizer, mode="always")
    result = HybridPlanner(RulePlanner(), llm).parse("much slower hair, make it 4 seconds", fashion_plan())
    assert result.planner == "hybrid"
    assert result.edits[0] == ScaleMotion(subject="hair", speed_factor=0.4)  # the model's, not the rules' hair edit
    assert SetDuration(seconds=4) in result.edits and len(result.edits) == 2


def test_disabled_means_rules_only_without_a_note(tiny_tokenizer):
    stub = RaisingModel(tiny_tokenizer)
    llm = planner_with(stub, tiny_tokenizer, enabled=False, mode="always")
    result = HybridPlanner(RulePlanner(), llm).parse("asdf qwerty", fashion_plan())
    assert stub.calls == 0 and result.notes == [] and result.planner == "rules"


def test_llm_only_planner_follows_the_planner_protocol(tiny_tokenizer):
    ok = planner_with(ScriptedModel(tiny_tokenizer, '[{"op":"undo"}]'), tiny_tokenizer)
    r = ok.parse("undo that please", fashion_plan())
    assert isinstance(r, ParseResult) and [e.op for e in r.edits] == ["undo"] and r.planner == "llm"
    bad = planner_with(RaisingModel(tiny_tokenizer), tiny_tokenizer)
    r = bad.parse("undo", fashion_plan())
    assert r.edits == [] and r.unparsed == ["undo"] and "failed" in r.notes[0]


def test_the_prompt_holds_operations_plan_history_and_message():
    plan = fashion_plan()
    msgs = build_messages("slower hair", plan, history=[("user", "make it 4 seconds"), ("assistant", "Done.")])
    system, last = msgs[0]["content"], msgs[-1]["content"]
    assert '"op":"scale_motion"' in system and "zoom_in" in system and "hair" in system
    assert '"template":"fashion"' in last and "make it 4 seconds" in last and last.endswith("Message: slower hair")
    assert plan.prompt not in last  # the long compiled prompt stays out
    locked = build_messages("x", plan, template_locked=True)[0]["content"]
    assert '"op":"set_template"' not in locked


def test_grounding():
    from agent.edits import AddAtmosphere, AddMotion, SetCamera, SetSeed

    assert is_grounded(ScaleMotion(subject="hair", speed_factor=0.6), "slower locks please")
    assert not is_grounded(ScaleMotion(subject="water", speed_factor=0.6), "slower hair")
    assert is_grounded(AddMotion(subject="animal", action="wag"), "the puppy wags")
    assert is_grounded(SetCamera(move="zoom_in"), "push in a little")
    assert not is_grounded(SetCamera(move="zoom_in"), "asdf qwerty")
    assert is_grounded(SetDuration(seconds=3), "3s please") and is_grounded(SetDuration(seconds=3), "make it longer")
    assert is_grounded(SetSeed(policy="new"), "another variation")
    assert is_grounded(AddAtmosphere(items=("golden hour light",)), "golden hour vibes")


# --- prompt enhancement -------------------------------------------------------------------------------------


def test_enhance_keeps_a_rewrite_that_names_every_subject_motion_and_camera_move(tiny_tokenizer):
    plan = fashion_plan()  # hair flows, eyes blink, camera zooms in
    good = ("A slow cinematic push in on her face, soft studio light, her hair flowing gently in a warm breeze, "
            "her eyes blinking naturally, shallow depth of field.")
    llm = planner_with(ScriptedModel(tiny_tokenizer, good), tiny_tokenizer)
    out = llm.enhance(plan)
    assert out.ok and out.prompt == good
    assert enhance_prompt(plan, planner=llm) == good


def test_enhance_falls_back_when_the_rewrite_loses_a_subject(tiny_tokenizer):
    plan = fashion_plan()
    lossy = "A slow cinematic push in, soft studio light, her eyes blinking naturally."
    out = planner_with(ScriptedModel(tiny_tokenizer, lossy), tiny_tokenizer).enhance(plan)
    assert not out.ok and out.prompt == plan.prompt and "hair" in out.message
    assert missing_elements(plan, lossy) == ["hair", "hair flow gently"]


def test_enhance_with_the_random_model_keeps_the_compiled_prompt(tiny_loader):
    plan = fashion_plan()
    out = tiny_planner(tiny_loader, enhance_max_new_tokens=48).enhance(plan)
    assert out.prompt == plan.prompt and not out.ok  # random words never name every subject: compiled prompt kept
    assert out.text and out.message.startswith("the rewrite")


def test_enhance_without_a_model_or_with_a_typed_prompt_returns_the_prompt_as_is():
    plan = fashion_plan()
    assert enhance_prompt(plan, planner=LLMPlanner(LLMConfig())) == plan.prompt
    typed = plan.with_changes(prompt_override="my own words")
    out = LLMPlanner(LLMConfig(model="smollm2")).enhance(typed)
    assert out.prompt == "my own words" and not out.ok and loaded_model() is None


# --- entry points -------------------------------------------------------------------------------------------


def test_make_planner_builds_the_hybrid_from_arguments_and_environment(monkeypatch, tiny_dir):
    monkeypatch.setenv("VIVIDFLOW_LLM_TIMEOUT_S", "3")
    p = make_planner(model=str(tiny_dir), gguf_file=None, mode="always")
    assert isinstance(p, HybridPlanner) and isinstance(p.rules, RulePlanner)
    assert p.config.model == str(tiny_dir) and p.config.timeout_s == 3 and p.config.mode == "always"
    assert isinstance(make_planner(model=str(tiny_dir), hybrid=False), LLMPlanner)
    assert loaded_model() is None  # nothing loads before the first message


@pytest.mark.slow
def test_cli_plans_with_the_qwen_planner(tiny_dir):
    env = dict(os.environ, HF_HUB_OFFLINE="1", VIVIDFLOW_LLM_MODE="always", VIVIDFLOW_LLM_TEMPERATURE="1.0",
               VIVIDFLOW_LLM_MAX_EDITS="1", VIVIDFLOW_LLM_MAX_NEW_TOKENS="64", OMP_NUM_THREADS="1")
    turns = {"turns": ["make her hair flow in the wind, slow zoom in", "slower hair, same seed", "qwerty"],
             "template": None}
    out = subprocess.run([sys.executable, "-m", "agent", "plan", "--planner", "qwen", "--model", str(tiny_dir),
                          "--rng-seed", "3"], input=json.dumps(turns), cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3
    for line in lines:
        MotionPlan.from_dict(line["plan"])
        assert line["reply"]


def test_hybrid_never_scores_below_rules_on_the_shared_conversations(tiny_loader):
    """A random model asked about whatever the rules left: the conversation table must not get worse."""
    from devtools.conversations import CONVERSATIONS, check, run_case

    rules_right = sum(check(c, *run_case(c)) for c in CONVERSATIONS)
    for seed in range(4):  # four different random answer streams
        llm = tiny_planner(tiny_loader, temperature=1.0, timeout_s=60, seed=seed)
        hybrid = HybridPlanner(RulePlanner(), llm)
        hybrid_right = sum(check(c, *run_case(c, planner=hybrid)) for c in CONVERSATIONS)
        assert hybrid_right >= rules_right, seed
