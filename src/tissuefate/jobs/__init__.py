"""The workflow's jobs: one module per rule file of workflow/rules/ (cohort, preprocessing,
training, prediction, evaluation), one function per rule.

Each function takes the input and output paths its rule names (and the settings it needs),
reads nothing else and writes exactly its outputs. These modules sit at the top of the
dependency graph: rules call them, nothing in the package imports them.
"""
