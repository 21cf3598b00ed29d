"""Experiment configs: a Python file with `get_config(arg)` returning a nested dict.

As in big_vision, an experiment is one file whose docstring is its runbook; `PATH:ARG`
passes `ARG` to `get_config` (e.g. `experiments/fbnet_proxyless.py:smoke`). Command-line
overrides `--set key.sub=value` may only change keys that exist, so a typo is an error
rather than a silently ignored setting; values parse as Python literals (numbers, lists,
booleans, None), anything else stays a string.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config that cannot be used: missing file, bad override, unknown key."""


def load_experiment(spec: str) -> dict[str, Any]:
    """`path/to/exp.py[:arg]` -> the dict its `get_config(arg)` returns."""
    path, _, arg = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"experiment file {path!r} not found (expected a .py file with get_config())")
    module_spec = importlib.util.spec_from_file_location(f"hwnas_experiment_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report where it failed
        raise ConfigError(f"{path}: failed to load ({type(e).__name__}: {e})") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: no get_config() function")
    config = module.get_config(arg or None)
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: get_config() must return a dict, got {type(config).__name__}")
    return config


def parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return text


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `config` with each `key.sub=value` applied; unknown keys are errors."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        node, parts = config, key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: no section {'.'.join(parts[: i + 1])!r} in the config")
            node = node[part]
        if parts[-1] not in node:
            known = ", ".join(sorted(node))
            raise ConfigError(f"override {item!r}: unknown key {key!r} (known here: {known})")
        node[parts[-1]] = parse_value(value)
    return config


def get(config: dict[str, Any], key: str) -> Any:
    """`config['a']['b']` for `key='a.b'`, with an error naming the missing key."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"config has no key {key!r}")
        node = node[part]
    return node


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=1, sort_keys=True, default=str)
