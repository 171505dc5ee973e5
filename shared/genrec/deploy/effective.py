"""genrec's Settings as a container would load them from its environment (nothing else).

A setting the environment leaves unset falls back to genrec's default, which for every
endpoint is the embedded local stack on 127.0.0.1: an env var that is merely missing is as
wrong in a cluster as one that names localhost. This builds the Settings a container gets,
so the check can tell which values are defaults. They are built unchecked: a production
environment's refusal (`genrec.config.SettingsRefused`) is a finding to report, not a crash.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import EnvSettingsSource

from genrec.config import Settings, UncheckedSettings

PREFIX = "GENREC_"
_DELIMITER = "__"


class _MappingEnv(EnvSettingsSource):
    """pydantic-settings' env source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = dict(env)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # as pydantic-settings treats os.environ: names folded unless case-sensitive, the "none" string
        out: dict[str, str | None] = {}
        for name, value in self._mapping.items():
            if self.env_ignore_empty and value == "":
                continue
            key = name if self.case_sensitive else name.lower()
            out[key] = None if self.env_parse_none_str is not None and value == self.env_parse_none_str else value
        return out


def from_env(env: Mapping[str, str]) -> Settings:
    """Settings from `env` only: no process environment, no genrec.toml. Raises pydantic's ValidationError."""

    class ContainerSettings(UncheckedSettings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": None})

        @classmethod
        def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                       init_settings: PydanticBaseSettingsSource,
                                       **_sources: PydanticBaseSettingsSource,
                                       ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, _MappingEnv(settings_cls, env))

    return ContainerSettings()


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field path, text) of every string-like setting, secrets revealed."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from leaves(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, str(k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, str(i)))
    elif isinstance(value, SecretStr):
        yield path, value.get_secret_value()
    elif isinstance(value, str | Path):
        yield path, str(value)


def env_name(path: tuple[str, ...], depth: int) -> str:
    return PREFIX + _DELIMITER.join(p.upper() for p in path[:depth])


def set_by(path: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The env var that sets this setting (it or a whole enclosing section as JSON), if any."""
    names = {k.upper() for k in env}
    for depth in range(len(path), 0, -1):
        if env_name(path, depth) in names:
            return env_name(path, depth)
    return None
