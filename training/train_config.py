"""Reading and checking training configs: field checks, JSON files, and resume compatibility.

Both training configs (:class:`~facecraft.training.regressor_config.RegressorTrainConfig`,
:class:`~facecraft.training.texture_config.TextureTrainConfig`) are frozen dataclasses read from
JSON objects of their field names. The helpers here give them one behaviour: unknown keys and
missing required keys are one :class:`InvalidInputError` listing them, an unreadable file is one
line, and a resumed run's saved config is compared with :func:`config_mismatch`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from facecraft.sdk.errors import InvalidInputError

__all__ = ["check_int", "check_float", "check_config_keys", "read_json_config",
           "config_mismatch"]


def check_int(name: str, v: object, minimum: int) -> None:
    """Raise :class:`InvalidInputError` unless ``v`` is an int (not a bool) >= ``minimum``."""
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InvalidInputError(f"expected {name} an int >= {minimum}, got {v!r}")


def check_float(name: str, v: object, *, minimum: float = 0.0, strict: bool = False) -> None:
    """Raise :class:`InvalidInputError` unless ``v`` is a finite number >= ``minimum`` (>
    with ``strict``); bools are refused."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < minimum or (strict and v == minimum):
        rel = ">" if strict else ">="
        raise InvalidInputError(f"expected {name} a finite number {rel} {minimum}, got {v!r}")


def check_config_keys(config_type: type, d: object, what: str) -> None:
    """Check a config dict's keys against the dataclass ``config_type``'s fields.

    Args:
        config_type: a dataclass type.
        d: the parsed JSON (must be a mapping).
        what: the config's name in messages, e.g. ``"training"`` or ``"texture"``.

    Raises:
        InvalidInputError: ``d`` not a mapping; keys that are no field (listed, with the
            field names); required fields (no default) absent (listed).
    """
    if not isinstance(d, Mapping):
        raise InvalidInputError(f"expected a JSON object for the {what} config, got "
                                f"{type(d).__name__}")
    fields = dataclasses.fields(config_type)
    names = [f.name for f in fields]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise InvalidInputError(f"unknown {what} config keys {unknown}; expected names from "
                                f"{names}")
    missing = [f.name for f in fields if f.name not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InvalidInputError(f"the {what} config lacks the required keys {missing}")


def read_json_config(path: str | os.PathLike[str], what: str) -> Any:
    """The parsed JSON of a config file (UTF-8).

    Raises:
        InvalidInputError: the file is missing, unreadable or not JSON (one line each).
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{what} config {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read {what} config {p}: {e}") from None
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{p} is not valid JSON: {e}") from None


def config_mismatch(config_type: type, saved: Mapping[str, Any], now: Mapping[str, Any],
                    resumable: Collection[str]) -> list[str]:
    """The fields in which a checkpoint's run config differs from this run's, sorted.

    Args:
        config_type: the config dataclass (for its defaults).
        saved: the checkpoint's config as JSON (``to_json()`` when it was saved).
        now: this run's ``to_json()``.
        resumable: fields that may change between a run and its resumption (ignored).

    A key absent from ``saved`` (a run saved before the field existed) counts as that field's
    plain default; fields whose default comes from a factory have none to fall back on, so their
    absence is a mismatch.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config_type)
                if f.default is not dataclasses.MISSING}
    return sorted(k for k in now if k not in resumable
                  and saved.get(k, defaults.get(k)) != now[k])
