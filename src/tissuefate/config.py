"""The study configuration: validated against the JSON schema shipped in the package
(workflow/schemas/config.schema.yaml links to it), defaults filled in."""

from __future__ import annotations

from pathlib import Path

SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"


def validate_config(config: dict) -> dict:
    """Validate in place (same schema and defaults as Snakemake's ``validate``)."""
    from snakemake.utils import validate

    validate(config, str(SCHEMA), set_default=True)
    if config.get("simulation") is None and config["dataset"]["simulate"]:
        raise ValueError("dataset.simulate is true but the config has no simulation section")
    return config
