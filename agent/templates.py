"""The eight motion-template categories: data, loaded once from templates.toml and validated.

A template's starting plan (its prompts compiled) is `agent.compiler.default_plan`.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.plan import LIMITS, TEMPLATE_IDS, Camera, Motion, TemplateId

TEMPLATES_FILE = Path(__file__).with_name("templates.toml")
MIN_PROMPTS = 6
DEFAULT_TEMPLATE = "portrait_subtle"  # a first message that names no category starts here


class Template(BaseModel):
    """One motion-template category: defaults for a fresh plan plus curated example prompts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: TemplateId
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    when: str = Field(min_length=1)
    steps: int = Field(ge=LIMITS["steps"][0], le=LIMITS["steps"][1])
    guidance: tuple[float, float]
    duration_s: float = Field(ge=LIMITS["duration_s"][0], le=LIMITS["duration_s"][1])
    camera: Camera
    atmosphere: tuple[str, ...] = ()
    negative_prompt: str
    motions: tuple[Motion, ...]
    prompts: tuple[str, ...] = Field(min_length=MIN_PROMPTS)


class TemplateLibrary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    common_negative_prompt: str
    templates: tuple[Template, ...]

    def get(self, template_id: str) -> Template:
        for t in self.templates:
            if t.id == template_id:
                return t
        raise KeyError(f"unknown template {template_id!r}; choose one of: {', '.join(TEMPLATE_IDS)}")


def load_library(path: Path = TEMPLATES_FILE) -> TemplateLibrary:
    """Read and validate a template file; every category of the contract must be there exactly once."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    try:
        lib = TemplateLibrary(
            common_negative_prompt=raw.get("common", {}).get("negative_prompt", ""),
            templates=tuple(raw.get("template", [])),
        )
    except ValidationError as e:
        raise ValueError(f"{path}: invalid template library: {e}") from None
    ids = [t.id for t in lib.templates]
    missing = [i for i in TEMPLATE_IDS if i not in ids]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if missing or dupes:
        raise ValueError(f"{path}: templates missing {missing or 'none'}, repeated {dupes or 'none'}")
    return lib


@cache
def library() -> TemplateLibrary:
    """The project's template library, loaded once per process."""
    return load_library()


def get_template(template_id: str) -> Template:
    return library().get(template_id)


def all_templates() -> tuple[Template, ...]:
    return library().templates
