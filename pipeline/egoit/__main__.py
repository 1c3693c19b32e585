"""python -m pipeline.egoit: the EgoIT build (pipeline/egoit/cli.py)."""

import sys

from pipeline.egoit.cli import main

sys.exit(main())
