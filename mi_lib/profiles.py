"""Profiles and devices: ``smoke`` (seconds, for tests), ``quick`` (CPU default), ``paper`` (GPU).

Each experiment module keeps a ``CONFIGS = {"smoke": ..., "quick": ..., "paper": ...}``
dict of frozen dataclasses; :func:`select` picks one, with ``"auto"`` meaning ``paper``
on CUDA and ``quick`` otherwise. The profile is always a parameter, never an edit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping

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


def select(configs: Mapping[str, Any], profile: str, device: str = "auto", **overrides: Any) -> Any:
    """The config for ``profile`` from ``configs``, with non-``None`` ``overrides`` replaced.

    A config with a ``device`` field gets ``device`` too.
    """
    cfg = configs[resolve_profile(profile, device)]
    changes: Dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if any(f.name == "device" for f in dataclasses.fields(cfg)):
        changes.setdefault("device", device)
    unknown = set(changes) - {f.name for f in dataclasses.fields(cfg)}
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)} for {type(cfg).__name__}")
    return dataclasses.replace(cfg, **changes)
