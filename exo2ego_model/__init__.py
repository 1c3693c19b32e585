"""Exo2Ego progressive training package (issue 3: not implemented yet)."""
