"""Reproducible, offline recipe for the embedded default model (needs the `export` extra).

    make model            # = python -m models.recipe  (data → train → export → evaluate)

Every source is a registry package; see ``SOURCES`` and the model card for licences.
"""

SEED = 20261128
