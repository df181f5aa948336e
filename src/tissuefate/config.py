"""The study configuration: validated against the JSON schema shipped in the package
(workflow/schemas/config.schema.yaml links to it), defaults filled in.

The schema is the one place of every default and allowed value: the settings objects of the
stages (preprocessing, thresholding, training, model) take their defaults from it through
:func:`section_defaults` and check a section given on its own with :func:`section`.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"


def validate_config(config: dict) -> dict:
    """Validate in place (same schema and defaults as Snakemake's ``validate``)."""
    from snakemake.utils import validate

    validate(config, str(SCHEMA), set_default=True)
    if config.get("simulation") is None and config["dataset"]["simulate"]:
        raise ValueError("dataset.simulate is true but the config has no simulation section")
    return config


@lru_cache(maxsize=1)
def schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA.read_text())


def section_defaults(name: str) -> dict:
    """The schema's defaults of one config section (a fresh copy)."""
    properties = schema()["properties"][name].get("properties", {})
    return {key: copy.deepcopy(sub["default"]) for key, sub in properties.items() if "default" in sub}


def section(config: dict | None, name: str) -> dict:
    """One section of a config with the schema's defaults filled in, checked against the
    schema (a ValueError names the key). A config that passed :func:`validate_config` passes
    unchanged."""
    import jsonschema

    values = {**section_defaults(name), **dict((config or {}).get(name) or {})}
    subschema = {k: v for k, v in schema()["properties"][name].items() if k != "required"}
    errors = sorted(jsonschema.Draft202012Validator(subschema).iter_errors(values), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join([name, *map(str, err.path)])
        kind = "unknown key" if err.validator == "additionalProperties" else "invalid value"
        raise ValueError(f"config {where}: {kind}: {err.message}")
    return values
