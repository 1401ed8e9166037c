"""Command-line loading of `RunSettings`.

Precedence, lowest first: defaults < TOML file (`--config FILE`) < environment
variables (`SEEDTRAIL_`, nested with `__`) < command-line flags. Only this layer
reads the environment; the flow receives the resulting frozen `RunSettings`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError, ValidationInfo, create_model, field_validator
from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from seedtrail.core.errors import InputError
from settings.model import RunSettings
from settings.validation import refuse_bool_for_number

ENV_PREFIX = "SEEDTRAIL_"


UsageError = InputError  # bad input from the user: one line per problem, exit status 2


class RaisingParser(argparse.ArgumentParser):
    """argparse prints usage and exits on error; we want one line and our own exit.

    Abbreviations are refused: `--training.epoch 3` must not silently mean `--training.epochs`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.flags: list[str] = []  # every --flag added, for suggestions (record_flags)

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            raise UsageError(unknown_flag_lines(message[len(prefix) :].split(), self.known_flags()))
        raise UsageError([message])

    other_flags: Sequence[str] = ()  # flags another parser of the same command takes

    def known_flags(self) -> list[str]:
        return [*self.flags, *self.other_flags]

    def record_flags(self, target: Any, *args: Any, **kwargs: Any) -> argparse.Action:
        """pydantic-settings' `add_argument_method`: add to `target` (this parser or one of
        its groups) and remember the flag."""
        action = target.add_argument(*args, **kwargs)
        self.flags += [f for f in action.option_strings if f.startswith("--")]
        return action


def unknown_flag_lines(args: Sequence[str], known: Sequence[str]) -> list[str]:
    """One line per unknown flag, naming the flag the user probably meant."""
    flags = [a for a in args if a.startswith("-")] or list(args)
    lines = []
    for arg in flags:
        name = arg.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"unknown flag: {name}{hint}")
    return lines


def _cli_model(toml_file: Path | None) -> type[BaseSettings]:
    """A BaseSettings twin of RunSettings (same fields) wired to env, TOML and CLI."""

    class _Base(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX,
            env_nested_delimiter="__",
            extra="forbid",
            frozen=True,
        )

        # The twin copies RunSettings' fields, not its validators: `seed = true` too.
        @field_validator("*", mode="before")
        @classmethod
        def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
            return refuse_bool_for_number(cls.model_fields, value, info)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
            return tuple(sources)

    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in RunSettings.model_fields.items()
    }
    return create_model("seedtrail", __base__=_Base, __doc__=RunSettings.__doc__, **fields)


def _split_config_flag(argv: list[str]) -> tuple[Path | None, list[str]]:
    """Take `--config FILE` out of argv; pydantic-settings does not know it."""
    rest: list[str] = []
    config: Path | None = None
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            value = next(it, None)
            if value is None:
                raise UsageError(["--config: expected a TOML file path"])
            config = Path(value)
        elif arg.startswith("--config="):
            config = Path(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return config, rest


#: Short flags for settings a user reaches for first: `--backend jax` is
#: `--determinism.backend jax` (the issue's "one switch"; both spellings work).
ALIASES = {"--backend": "--determinism.backend"}


def _expand_aliases(argv: list[str]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        full = ALIASES.get(flag)
        out.append(f"{full}{eq}{value}" if full else arg)
    return out


#: Settings whose flag or environment value is JSON, and what it must be.
_JSON_SETTINGS = {
    "model.options": (dict, 'a JSON object, e.g. {"filters": [8, 16]}'),
}


def env_name(setting: str) -> str:
    """`model.options` -> `SEEDTRAIL_MODEL__OPTIONS`."""
    return ENV_PREFIX + setting.replace(".", "__").upper()


def _env_value(setting: str) -> tuple[str, str] | None:
    """(variable, value) of the environment variable that sets `setting`, if set."""
    wanted = env_name(setting)
    for name, value in os.environ.items():
        if name.upper() == wanted:  # pydantic-settings reads them case-insensitively
            return name, value
    return None


def _json_problem(setting: str, text: str) -> str | None:
    """Why `text` is not the JSON value `setting` needs, or None."""
    kind, expected = _JSON_SETTINGS[setting]
    try:
        value = json.loads(text)
    except ValueError:
        return f"expected {expected} (got {text!r}: not valid JSON)"
    if not isinstance(value, kind):
        return f"expected {expected} (got {text!r})"
    return None


def check_json_values(argv: Sequence[str]) -> None:
    """Flags and environment variables that take JSON hold the right kind of JSON value.

    pydantic-settings would say "not enough values to unpack" for `--model.options
    '[1,2]'`, and name neither the variable nor its value for a bad
    SEEDTRAIL_MODEL__OPTIONS.
    """
    problems = []
    for setting in _JSON_SETTINGS:
        flag = "--" + setting.replace("_", "-")
        values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
        values += [a.split("=", 1)[1] for a in argv if a.startswith(flag + "=")]
        for text in values:
            if (problem := _json_problem(setting, text)) is not None:
                problems.append(f"{setting}: {problem}")
        env = _env_value(setting)
        if env is not None and (problem := _json_problem(setting, env[1])):
            problems.append(f"{setting}: {env[0]}: {problem}")
    if problems:
        raise UsageError(problems)


def _name_env_sources(lines: list[str], argv: Sequence[str]) -> list[str]:
    """A problem with a setting that an environment variable set (and no flag): say which."""
    out = []
    for line in lines:
        setting = line.split(":", 1)[0]
        flag = "--" + setting.replace("_", "-")
        env = _env_value(setting) if "." in setting or setting in RunSettings.model_fields else None
        given_as_flag = any(a == flag or a.startswith(flag + "=") for a in argv)
        if env is not None and not given_as_flag:
            line = f"{line} (from {env[0]}={env[1]!r})"
        out.append(line)
    return out


def check_toml_file(path: Path) -> None:
    """The --config file exists, is a file and parses as TOML; else one line naming it."""
    if path.is_dir():
        raise UsageError([f"--config: {path} is a directory, not a TOML file"])
    if not path.is_file():
        raise UsageError([f"--config: file not found: {path}"])
    try:
        tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError([f"--config {path}: not a valid TOML file ({_one_line(err)})"]) from None


def format_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: `field.path: message (got value)`."""
    errors = err.errors()
    lines = []
    for e in errors:
        if e["type"] == "too_short" and _has_item_error(e["loc"], errors):
            continue  # pydantic adds "should have at least 1 item" after a bad item: noise
        loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int)) or "settings"
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict) or e["type"] == "missing" else f" (got {got!r})"
        lines.append(f"{prefix}{loc}: {msg}{shown}")
    return lines


def _has_item_error(loc: tuple[Any, ...], errors: list[Any]) -> bool:
    return any(len(o["loc"]) > len(loc) and tuple(o["loc"][: len(loc)]) == loc for o in errors)


def build_parser(prog: str, description: str, epilog: str = "") -> RaisingParser:
    return RaisingParser(
        prog=prog,
        description=description,
        epilog=(
            "--config FILE  TOML file of settings (same keys as the flags, in [sections]). "
            f"Precedence: defaults < --config < {ENV_PREFIX}* environment variables "
            f"(e.g. {ENV_PREFIX}TRAINING__EPOCHS=3) < flags. {epilog}"
        ).strip(),
    )


def load_settings(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m flows.train",
    description: str = "Train a Keras model reproducibly in a Prefect flow.",
    epilog: str = "",
    other_flags: Sequence[str] = (),
) -> RunSettings:
    """Parse flags (plus env and TOML) into a frozen RunSettings, or raise UsageError.

    `other_flags`: the command's own flags, so that a misspelt one is suggested too.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config, argv = _split_config_flag(_expand_aliases(argv))
    if config is not None:
        check_toml_file(config)
    check_json_values(argv)
    model = _cli_model(config)
    parser = build_parser(prog, description, epilog)
    parser.other_flags = ["--config", *other_flags]
    cli = CliSettingsSource(
        model,
        root_parser=parser,
        add_argument_method=parser.record_flags,
        cli_kebab_case=True,
        cli_implicit_flags=False,
        cli_avoid_json=True,
        cli_hide_none_type=True,
        cli_exit_on_error=False,
        cli_prog_name=prog,
    )
    try:
        parsed = model(_cli_settings_source=cli(args=argv))
    except UsageError:
        raise
    except ValidationError as err:
        raise UsageError(_name_env_sources(format_validation_error(err), argv)) from None
    except Exception as err:  # TOML syntax, JSON in a flag, ...: still one line, no traceback
        raise UsageError([_one_line(err)]) from None
    # Only what was given: a setting left unset may be inferred (data.kind from data.path).
    try:
        return RunSettings.model_validate(parsed.model_dump(exclude_unset=True))
    except ValidationError as err:
        raise UsageError(_name_env_sources(format_validation_error(err), argv)) from None


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text.removeprefix("error parsing CLI: ")
