"""python -m exo2ego_model.eval: EgoBench evaluation of a checkpoint (exo2ego_model/eval/run.py)."""

import logging
import sys


class _BeamImportNoise(logging.Filter):
    """pipeline.egobench's records import Apache Beam (through the package __init__), whose GCP module logs
    "apitools not found ..." on the root logger at import: not about this run, and it would precede the one
    line a bad command line gets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_BeamImportNoise())

from exo2ego_model.eval.run import main  # noqa: E402

sys.exit(main())
