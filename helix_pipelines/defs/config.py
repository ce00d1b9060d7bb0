"""Dagster configuration generated from the domain's settings dataclasses, so a setting has one
definition (its dataclass field, with its default) and the UI's launchpad still edits each one.

`resource_of(SettingsClass)` gives a `ConfigurableResource` base whose fields are the dataclass's
(a `Path` is configured as text) and whose `domain()` builds the dataclass back, validated by
its own `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pydantic


def _config_type(hint: Any) -> Any:
    """The type Dagster's config holds for a dataclass field's type: paths as text, tuples as
    lists (what Dagster's config schema knows)."""
    if hint is Path:
        return str
    args = typing.get_args(hint)
    if args and Path in args:
        return str | None
    if typing.get_origin(hint) is tuple:
        return list[args[0]]  # type: ignore[valid-type]
    return hint


def _domain_value(hint: Any, value: Any) -> Any:
    """A configured value as the dataclass field wants it (the inverse of `_config_type`)."""
    if value is None:
        return None
    if hint is Path or Path in typing.get_args(hint):
        return Path(value)
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    return value


def _fields(settings: type, exclude: frozenset[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(settings)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        if f.name in exclude:
            continue
        missing = f.default is dataclasses.MISSING
        default = f.default_factory() if missing else f.default  # type: ignore[misc]
        if isinstance(default, Path):
            default = str(default)
        elif isinstance(default, tuple):
            default = list(default)
        fields[f.name] = (_config_type(hints[f.name]), pydantic.Field(default=default))
    return fields


class DomainResource(dg.ConfigurableResource):
    """A resource made of one settings dataclass's fields."""

    settings_class: ClassVar[type]

    def domain(self, **extra: Any) -> Any:
        """The settings dataclass these fields make (its own checks run)."""
        hints = typing.get_type_hints(self.settings_class)
        names = {f.name for f in dataclasses.fields(self.settings_class)}
        values = {n: _domain_value(hints[n], getattr(self, n)) for n in names if n not in extra}
        return self.settings_class(**values, **extra)

    @classmethod
    def of(cls, settings: Any, **overrides: Any) -> Any:
        """The resource configured like `settings` (a dataclass instance), `overrides` on top
        (say, a secret bound to `dg.EnvVar`)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(settings):
            if f.name in cls.model_fields:
                value = getattr(settings, f.name)
                values[f.name] = list(value) if isinstance(value, tuple) else value
                if isinstance(value, Path):
                    values[f.name] = str(value)
        return cls(**{**values, **overrides})


def resource_of(settings: type, *, exclude: frozenset[str] = frozenset()) -> type[DomainResource]:
    base = pydantic.create_model(  # type: ignore[call-overload]
        f"{settings.__name__}Fields", __base__=DomainResource, **_fields(settings, exclude)
    )
    base.settings_class = settings
    return base
