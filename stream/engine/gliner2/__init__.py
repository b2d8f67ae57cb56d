"""The GLiNER2 family: one schema asks for entities, classifications, structures and relations
in one encoder pass (gliner2's span architecture, torch-free)."""
