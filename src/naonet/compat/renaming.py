"""Renaming state_dict keys from another code base's layout, checked against a model."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from naonet.errors import UserError

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile


def without_wrappers(key: str) -> str:
    """A parameter's name in the bare module: a state_dict saved from a wrapped one
    (DDP's ``module.``, torch.compile's ``_orig_mod.``, in any nesting) names it inside
    the wrappers."""
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


class KeyRenamer:
    """Ordered regular-expression rules that map foreign parameter names to ours."""

    def __init__(self, rules: list[tuple[str, str]], what: str, hint: str):
        self.rules = [(re.compile(pattern), replacement) for pattern, replacement in rules]
        self.what = what  # named in mismatch errors ("checkpoint", "controller state")
        self.hint = hint  # what to check when a state does not fit

    def convert_key(self, key: str) -> str:
        key = without_wrappers(key)
        for pattern, replacement in self.rules:
            key = pattern.sub(replacement, key)
        return key

    def convert_state_dict(self, foreign: Mapping[str, torch.Tensor],
                           target: Mapping[str, torch.Tensor] | None = None
                           ) -> dict[str, torch.Tensor]:
        """Rename every key; with ``target`` (our model's state_dict) every converted key
        must exist there with the same shape and every target key must be covered."""
        converted = {self.convert_key(key): value for key, value in foreign.items()}
        if target is not None:
            self.check_fits(converted, target)
        return converted

    def check_fits(self, converted: Mapping[str, torch.Tensor],
                   target: Mapping[str, torch.Tensor]) -> None:
        details = describe_mismatch(converted, target)
        if details:
            raise UserError(f"{self.what} does not fit: {details}; {self.hint}")


def describe_mismatch(converted: Mapping[str, torch.Tensor],
                      target: Mapping[str, torch.Tensor]) -> str:
    """'' when both hold the same keys with the same shapes, else the first differences."""
    unknown = [key for key in converted if key not in target]
    missing = [key for key in target if key not in converted]
    wrong = [key for key in converted if key in target
             and tuple(converted[key].shape) != tuple(target[key].shape)]
    details = []
    if unknown:
        details.append(f"{len(unknown)} unexpected (first: {unknown[0]})")
    if missing:
        details.append(f"{len(missing)} missing (first: {missing[0]})")
    if wrong:
        key = wrong[0]
        details.append(f"{len(wrong)} with another shape (first: {key} "
                       f"{tuple(converted[key].shape)} vs {tuple(target[key].shape)})")
    return "; ".join(details)
