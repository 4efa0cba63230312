"""Booleans are not numbers. Pydantic's lax mode takes `true` as 1 in an int or float field
(`budget: {architectures: true}` ran one architecture); models built on `StrictNumbers`
refuse a boolean wherever a number goes, naming the field."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator


def takes_numbers(annotation: Any) -> bool:
    """Whether a field of this type holds an int or a float (alone or in a union) and no bool."""
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    return bool not in members and any(member in (int, float) for member in members)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


class StrictNumbers(BaseModel):
    """A model whose int and float fields refuse `true` / `false`."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and takes_numbers(field.annotation):
                raise ValueError(f"expected a number, got {str(value).lower()}")
        return value
