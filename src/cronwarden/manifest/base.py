"""What every manifest model shares: frozen, keys by name or alias, extra keys kept (so
that the loader can warn about each)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")


def accepted_keys(model: type[BaseModel]) -> frozenset[str]:
    """Every key ``model`` reads: its field names and their aliases."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        keys.add(name)
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        keys.update(choice for choice in choices if isinstance(choice, str))
    return frozenset(keys)
