"""python -m pipeline.egobench: the EgoBench build (pipeline/egobench/builder.py)."""

import sys

from pipeline.egobench.builder import main

sys.exit(main())
