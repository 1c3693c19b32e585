"""exo2ego's dataset builders (Ego-ExoClip, EgoIT, EgoBench, EgoClip) on one Apache Beam skeleton (pipeline/core).

Importing Apache Beam logs "apitools not found ..." on the root logger (its GCP module, at import): not about
any build, and it would precede the one `error:` line a bad command line gets. It is filtered here, before any
module of this package imports Beam; every other log record passes.
"""

import logging


class _BeamImportNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_BeamImportNoise())
