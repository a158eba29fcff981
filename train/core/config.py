"""The one config loader of the recipes: a YAML file, command-line values over it, strict dataclasses from it.

- [`load_config`] reads a recipe's YAML file ([`load_yaml`]: every string may use `${ENV_VAR}`, expanded when read,
  so one file serves several machines) and lays the values given on the command line over its top-level keys.
- [`from_dict`] builds a (nested) settings dataclass from the mapping. Unknown keys are errors that list the
  allowed ones, so a typo never silently falls back to a default; a missing required key is named.

The curriculum and the classification recipe build their settings with `from_dict`; the alignment commands give
their YAML values to transformers' `HfArgumentParser` as defaults that the command line overrides.
"""

import dataclasses
import os
import types
import typing
from collections.abc import Mapping


def expand_env(value):
    """Expand `${VAR}` in every string of a nested YAML value; an unset variable is an error."""
    if isinstance(value, str):
        expanded = os.path.expandvars(value)
        if "${" in expanded:
            start = expanded.index("${")
            name = expanded[start + 2 : expanded.index("}", start)]
            raise ValueError(f"The config uses ${{{name}}} but the environment variable {name} is not set.")
        return expanded
    if isinstance(value, dict):
        return {key: expand_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item) for item in value]
    return value


def load_yaml(path: str) -> dict:
    """The mapping in a YAML file, with `${ENV_VAR}`s expanded."""
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist.")
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping of settings at the top level.")
    return expand_env(config)


def load_config(path: str, overrides: Mapping | None = None) -> dict:
    """A recipe's settings: the YAML file at `path`, then each override that was given (not `None`) in place of
    the top-level key of the same name (the command line wins over the file)."""
    config = load_yaml(path)
    config.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return config


def check_keys(where: str, values: Mapping, allowed, listing: str | None = None) -> None:
    """Raise naming the unknown keys of `values` and the allowed ones (or, for long lists, where `listing` says
    they are listed)."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; {listing or f'allowed keys are {sorted(allowed)}'}.")


def from_dict(cls, where: str, values: Mapping | None):
    """Dataclass `cls` from a YAML mapping (`None`: all defaults), checked key by key.

    Fields typed as a dataclass (or an optional one) are built from their nested mappings the same way, so an
    unknown key deep inside is reported with its path, e.g. `config.finetune: unknown key(s) ['lora_rank']`.
    """
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a mapping of settings, got {type(values).__name__}: {values!r}.")
    settings = {item.name: item for item in dataclasses.fields(cls) if item.init}
    check_keys(where, values, settings)
    required = [name for name, item in settings.items() if _is_required(item) and name not in values]
    if required:
        raise ValueError(f"{where}: `{required[0]}` is required; give it a value.")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _build(hints[name], value, f"{where}.{name}") for name, value in values.items()})


def _is_required(item: dataclasses.Field) -> bool:
    return item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING


def _build(kind, value, where: str):
    """A field's value: a nested dataclass (or optional dataclass) built from its mapping, anything else as it is."""
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    options = typing.get_args(kind) if union else [kind]
    nested = [option for option in options if dataclasses.is_dataclass(option)]
    if len(nested) != 1 or dataclasses.is_dataclass(value) or (value is None and type(None) in options):
        return value
    return from_dict(nested[0], where, value)


__all__ = ["check_keys", "expand_env", "from_dict", "load_config", "load_yaml"]
