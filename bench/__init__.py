import stream  # noqa: F401  (first: its OpenBLAS setting must precede numpy's import; see stream/__init__.py)
