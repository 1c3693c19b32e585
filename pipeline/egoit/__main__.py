"""python -m pipeline.egoit: the EgoIT build (pipeline/egoit/builder.py)."""

import sys

from pipeline.egoit.builder import main

sys.exit(main())
