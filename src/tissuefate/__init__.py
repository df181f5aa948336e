"""tissuefate: tissue-at-risk and ischemic-core prediction in acute ischemic stroke.

Reproduces Yu et al., AJNR 2021 (doi 10.3174/ajnr.A7081) as a Snakemake pipeline.
Each stage of the study is one module of this package; the workflow's rules only call them.
"""

__version__ = "0.1.0"
