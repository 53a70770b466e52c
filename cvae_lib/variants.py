"""Other models the book compares against (filled in by the evaluation work)."""

VARIANTS: tuple = ()
