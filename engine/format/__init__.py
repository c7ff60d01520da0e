"""The pipeline format's rules that both the engine and the studio apply.

One statement of each rule, so the editor never drifts from what the engine accepts:
``yaml12`` (which plain scalars are nulls, booleans and numbers), ``templates`` (where a
``{{ }}`` block ends, which programs are plain lookups), ``step_refs`` (the values a
step type's dotted reference paths name) and ``json_types`` (the type names messages use).

The studio imports this package (see ``[tool.importlinter]``), so it stays light: the
standard library and PyYAML only, never Qt, jq, SQLAlchemy or the rest of the engine.
"""
