"""EgoBench evaluation: metrics (exo2ego_model/eval/metrics.py re-exports them all)."""

from exo2ego_model.eval.metrics import *  # noqa: F403
from exo2ego_model.eval.metrics import __all__  # noqa: F401
