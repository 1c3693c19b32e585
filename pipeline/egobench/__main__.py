"""python -m pipeline.egobench: the EgoBench build (pipeline/egobench/cli.py)."""

import sys

from pipeline.egobench.cli import main

sys.exit(main())
