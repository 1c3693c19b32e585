"""Moved to exo2ego_model.inference (generate, score); this module re-exports it for older imports."""

from .inference import generate, generate_ids, score  # noqa: F401
