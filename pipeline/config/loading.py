"""Loading params files (duplicate keys refused, `-S`-style overrides) and the small helpers
every stage uses on Params (seed folders, plain dicts)."""
from __future__ import annotations

import dataclasses
import os
import typing

import yaml

from pipeline.config.sections import Params, ParamsError
from pipeline.config.validation import parse_params


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that rejects a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader reports it
            if key in seen:
                raise ParamsError(f"{key}: given twice in one mapping (line "
                                  f"{key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params(path: str = "params.yaml", overrides=()) -> Params:
    """The params file, with `overrides` ("section.key=value", the value in YAML, as
    `dvc exp run -S` takes them) applied before validation."""
    try:
        with open(path) as f:
            raw = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a folder, not a params file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{path}: not valid YAML ({where}{problem})") from None
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise ParamsError(f"override {override!r}: expected section.key=value")
        *sections, last = key.split(".")
        node = raw
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ParamsError(f"override {override!r}: {path} has no section "
                                  f"{key.rsplit('.', 1)[0]!r}")
        node[last] = yaml.safe_load(value)
    return parse_params(raw)


def seed_dir(root: str, row_name: str, seed: int) -> str:
    """Where one training run of a structure row lives: <root>/<row>/seed<k>."""
    return os.path.join(root, row_name, f"seed{seed}")


def to_dict(obj):
    """Resolved config as plain data (written next to every output)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj
