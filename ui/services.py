"""What the pages share: per-process resources (store, runner) in `st.cache_resource`, per-session state
(settings, the studio) in `st.session_state`, set up once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st

from agent.plan import MotionPlan
from generation.config import GenerationConfig
from storage import LOCAL_USER, GenerationRecord, StorageError, Store, open_store

from ui import compare, create, plan_panel
from ui.auth import current_user
from ui.format import backend_label
from ui.gallery import GalleryActions
from ui.session_settings import settings, startup_settings
from ui.widgets import new_scope
from vividflow.settings import Settings
from vividflow.studio import Studio, StudioError

if TYPE_CHECKING:
    from generation.jobs import Runner

PAGES = "nav.pages"
ACTION_ERROR = "res.error"  # why the last Generate or chat turn failed; ui.result shows it once
AUTO_RENDER = "res.auto"  # ui.result's "render again after each chat change" toggle


def register_pages(pages: dict[str, object]) -> None:
    """Keep the navigation's page objects so any page can switch to another (Branch into chat)."""
    st.session_state[PAGES] = pages

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def store_for(home: str) -> Store:
    """One store per data folder per process (thread-safe; every page and the runner share it)."""
    return open_store(home=home)


def wan_config(s: Settings) -> GenerationConfig:
    """The settings' `wan` section as the generation package's config (with the model registry)."""
    return GenerationConfig.from_settings(s.wan)


def llm_config(s: Settings) -> Any:
    """The settings' `llm` section as the LLM planner's config."""
    from agent.llm import LLMConfig

    return LLMConfig.from_settings(s.llm)


def store() -> Store:
    return store_for(str(settings().home))


def studio() -> Studio:
    """This browser session's studio, resumed from the store the first time (history survives restarts):
    the signed-in person's (ui.auth.current_user) most recent conversation."""
    s = st.session_state.get("studio")
    current = store()
    user = current_user()
    if s is None or s.store is not current or s.user != user:
        s = Studio.resume(current, user=user)
        st.session_state["studio"] = s
    return s


def switch_conversation(conversation_id: int | None) -> None:
    """Open another conversation; None starts a new one with the same picture."""
    current = store()
    user = current_user()
    previous = st.session_state.get("studio")
    if conversation_id is None:
        new = Studio.fresh(current, user=user)
        new.image = previous.image if previous is not None else None
    else:
        new = Studio.resume(current, conversation_id, user=user)
    st.session_state["studio"] = new
    new_scope()  # its widgets are new widgets (ui.widgets.scoped): nothing of the previous chat leaks in
    plan_panel.reset()
    create.clear_error()


@st.cache_resource(show_spinner=False)
def runner_for(home: str, wan_config: GenerationConfig) -> Runner:
    """One job runner per process and data folder (generation.jobs.Runner). It starts with the first page
    and marks jobs a dead process left queued/running as interrupted. Under VIVIDFLOW_WORKERS=external
    it only queues jobs in the database's shared queue, for the workers to run. The Wan backend is built from the
    settings' GenerationConfig the first time a `wan` job runs."""
    from generation.jobs import Runner
    from generation.preview import PreviewBackend
    from vividflow.settings import load_settings as load_all_settings

    if load_all_settings().studio.workers == "external":  # VIVIDFLOW_WORKERS: `python -m generation worker`s run them
        return Runner(store_for(home), devices=(), shared_queue=True)

    def factory(name: str, device: str) -> Any:
        return make_backend(name, wan_config)

    return Runner(store_for(home), {"preview": PreviewBackend()}, factory=factory)


def make_backend(name: str, wan_config: GenerationConfig) -> Any:
    """The runner's backend factory. Before Wan loads (and before every clip) the LLM planner's model is
    unloaded, so the two never share the GPU."""
    from generation.choose import get_backend

    if name == "wan":
        from agent.llm import unload_all
        from generation.wan_load import register_before_load

        register_before_load(unload_all)
    return get_backend(name, wan_config if name == "wan" else None)


def runner() -> Runner:
    s = settings()
    return runner_for(str(s.home), wan_config(_startup_settings(s)))


def _startup_settings(s: Settings) -> Settings:
    """The settings as loaded (sidebar changes do not rebuild the process-wide runner)."""
    return st.session_state.get("settings.loaded", s)


@st.cache_resource(show_spinner=False)
def hybrid_planner(config: object) -> object:
    """One LLM planner per LLM configuration per process (the model loads lazily, on first use)."""
    from agent.llm import HybridPlanner, LLMPlanner
    from agent.rules import RulePlanner

    return HybridPlanner(RulePlanner(), LLMPlanner(config), config)


def context() -> Context:
    runner()  # started with the first page: it marks jobs a dead process left running as interrupted
    return Context(settings(), store(), studio())


@dataclass(frozen=True)
class Context:
    """What one run of a page works with; its methods are the page's actions (widget callbacks)."""

    settings: Settings
    store: Store
    studio: Studio

    @property
    def user(self) -> str:
        """The signed-in person, or "local"."""
        return self.studio.user

    @property
    def is_admin(self) -> bool:
        """Sees every person's queue: a name in VIVIDFLOW_ADMINS, or the local user (nobody signed in: the
        person at this machine)."""
        return is_admin(self.settings, self.user)

    @property
    def quota(self) -> int | None:
        """The most jobs one person may have queued or running (VIVIDFLOW_QUEUE_QUOTA); None: no limit."""
        return self.settings.studio.queue_quota or None

    @property
    def backend_name(self) -> str:
        return resolved_backend(self.settings)

    @property
    def model_id(self) -> str:
        from generation.choose import model_id_for

        return model_id_for(self.backend_name, wan_config(self.settings))

    @property
    def max_area(self) -> int:
        from generation.choose import size_rule_for

        return size_rule_for(self.backend_name, wan_config(self.settings))[0]

    @property
    def backend_text(self) -> str:
        return backend_label(self.backend_name, None if self.backend_name == "preview" else self.model_id)

    @property
    def enhancer(self) -> Callable[[MotionPlan], str] | None:
        """The LLM prompt enhancer (same loaded model as the chat's LLM planner); None when the LLM is off."""
        if not self.settings.llm.available:
            return None
        llm = hybrid_planner(llm_config(self.settings)).llm

        def enhance(plan: MotionPlan) -> str:
            from agent.llm import enhance_prompt

            return enhance_prompt(plan, planner=llm)

        return enhance

    # --- actions -------------------------------------------------------------------------------

    def generate(self) -> GenerationRecord | None:
        """Queue the current plan (a child of the result the chat continues from)."""
        from generation.backend import BackendUnavailable
        from generation.jobs import JobError

        try:
            return self.studio.submit(runner(), self.backend_name, self.model_id, quota=self.quota)
        except (StudioError, JobError, BackendUnavailable, StorageError) as e:  # StorageError: the quota
            st.session_state[ACTION_ERROR] = str(e)
            return None

    def cancel(self, generation_id: int) -> None:
        runner().cancel(generation_id)

    def requeue(self, generation_id: int) -> None:
        runner().requeue(generation_id)
        self.studio.active_job_id = generation_id

    @property
    def planner(self) -> object | None:
        """The hybrid LLM planner when the LLM is on (rules first, fallback on any failure), else None:
        plan_turn then uses the rule planner."""
        if not self.settings.llm.available:
            return None
        return hybrid_planner(llm_config(self.settings))

    def chat(self, message: str) -> None:
        """A chat turn; once a result exists, a turn that changes the plan renders again as its child."""
        before = self.studio.plan
        try:
            if self.settings.llm.available:  # the model may load on first use (seconds to a minute)
                with st.spinner("Thinking (LLM planner)…"):
                    reply = self.studio.chat(message, planner=self.planner)
            else:
                reply = self.studio.chat(message, planner=self.planner)
        except StudioError as e:
            st.session_state[ACTION_ERROR] = str(e)
            return
        if reply.compare is not None:  # "compare #3 and #5": the page shows both side by side
            compare.ask_from_chat(reply.compare.a, reply.compare.b)
        if (
            not any(e.op == "pick" for e in reply.edits)  # picking a clip of a batch renders nothing (#12 §3)
            and self.studio.base_generation_id is not None
            and self.studio.image is not None
            and self.studio.plan != before
            and st.session_state.get(AUTO_RENDER, True)
        ):
            self.generate()

    def gallery_actions(self) -> GalleryActions:
        return GalleryActions(rerun=self.rerun, branch=self.branch, delete=self.delete, share=self.share)

    def rerun(self, generation_id: int, new_seed: bool) -> GenerationRecord:
        return self.studio.rerun(runner(), generation_id, new_seed=new_seed, quota=self.quota)

    def share(self, generation_id: int, shared: bool) -> None:
        """Show one's own generation in every person's gallery, or take it back."""
        self.store.share_generation(generation_id, shared, user=self.user)

    def branch(self, generation_id: int) -> None:
        switch_conversation(None)
        studio()  # the new one
        st.session_state["studio"].branch_from(generation_id)
        st.switch_page(st.session_state[PAGES]["studio"])

    def delete(self, generation_id: int) -> None:
        """Delete one's own generation and its files; a queued one is taken out of the runner's queue first."""
        g = self.store.get_generation(generation_id, viewer=self.user)
        if g.user_id == self.user and g.status == "queued":
            runner().cancel(generation_id)
        self.store.delete_generation(generation_id, remove_files=True, user=self.user)


def is_admin(s: Settings, user: str) -> bool:
    return user in s.studio.admins or user == LOCAL_USER


def backend_note() -> str:
    """One line under the backend setting: what `auto` picks here, or why `wan` cannot run here."""
    s = settings()
    if s.backend == "auto":
        return f"auto → **{resolved_backend(s)}** on this machine"
    if s.backend == "wan":
        problem = wan_problem(wan_config(s))
        return f":material/warning: {problem}" if problem else ""
    return ""


@st.cache_resource(show_spinner=False)
def wan_problem(cfg: GenerationConfig) -> str:
    """Why the Wan backend cannot run here ("" when it can); checked once per process and config."""
    from generation.backend import BackendUnavailable
    from generation.choose import check_available

    try:
        check_available("wan", cfg)
    except BackendUnavailable as e:
        return str(e)
    return ""


def resolved_backend(s: Settings) -> str:
    """The backend name new renders use: the setting, with `auto` decided once per process and model."""
    if s.backend != "auto":
        return s.backend
    return auto_backend(wan_config(s))


@st.cache_resource(show_spinner=False)
def auto_backend(cfg: GenerationConfig) -> str:
    """`wan` when its weights are present and CUDA works, else `preview` (generation.choose's rule)."""
    from generation.choose import default_backend_name

    return default_backend_name(cfg, requested="auto")
