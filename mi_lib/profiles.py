"""Profiles and devices: ``smoke`` (seconds, for tests), ``quick`` (CPU default), ``paper`` (GPU).

Each experiment module keeps a ``CONFIGS = {"smoke": ..., "quick": ..., "paper": ...}``
dict of frozen dataclasses; :func:`select` picks one, with ``"auto"`` meaning ``paper``
on CUDA and ``quick`` otherwise. The profile is always a parameter, never an edit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Tuple

import torch

PROFILES = ("smoke", "quick", "paper")


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from e


def resolve_profile(profile: str, device: str = "auto") -> str:
    """``"auto"`` -> ``"paper"`` when the device is CUDA, else ``"quick"``; validates the name."""
    if profile == "auto":
        return "paper" if resolve_device(device).type == "cuda" else "quick"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}, auto")
    return profile


def _paths(cfg: Any, prefix: Tuple[str, ...] = ()) -> Dict[str, List[Tuple[str, ...]]]:
    """Every field name of ``cfg`` and of the dataclasses nested in it -> the paths that reach it."""
    out: Dict[str, List[Tuple[str, ...]]] = {}
    for f in dataclasses.fields(cfg):
        out.setdefault(f.name, []).append(prefix + (f.name,))
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for name, paths in _paths(value, prefix + (f.name,)).items():
                out.setdefault(name, []).extend(paths)
    return out


def _replace_at(cfg: Any, path: Tuple[str, ...], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(cfg, **{path[0]: value})
    return dataclasses.replace(cfg, **{path[0]: _replace_at(getattr(cfg, path[0]), path[1:], value)})


def override(cfg: Any, **changes: Any) -> Any:
    """``cfg`` with fields replaced, also inside nested config dataclasses (a template ``RunConfig``,
    a ``TrainSpec``): ``override(fig2, steps_per_level=500)`` sets ``fig2.run.steps_per_level``.

    A name found at the top level wins; a name found only in nested configs must be found in
    exactly one of them. Unknown names raise ``ValueError``.
    """
    paths = _paths(cfg)
    unknown = sorted(set(changes) - set(paths))
    if unknown:
        raise ValueError(f"unknown settings {unknown} for {type(cfg).__name__}")
    for name, value in changes.items():
        found = paths[name]
        top = [p for p in found if len(p) == 1]
        if not top and len(found) > 1:
            raise ValueError(
                f"setting {name!r} is ambiguous in {type(cfg).__name__}: {', '.join('.'.join(p) for p in found)}"
            )
        cfg = _replace_at(cfg, (top or found)[0], value)
    return cfg


def select(configs: Mapping[str, Any], profile: str, device: str = "auto", **overrides: Any) -> Any:
    """The config for ``profile`` from ``configs``, with non-``None`` ``overrides`` replaced (:func:`override`).

    A config with a ``device`` field (at any depth) gets ``device`` too.
    """
    cfg = configs[resolve_profile(profile, device)]
    changes: Dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if "device" in _paths(cfg):  # at the top level or in a nested TrainSpec
        changes.setdefault("device", device)
    return override(cfg, **changes)
