"""Figures and tables for the report: what researchers take away from the pipeline."""
