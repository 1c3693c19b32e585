"""python -m pipeline.egoclip: the EgoClip build (pipeline/egoclip/builder.py)."""

import sys

from pipeline.egoclip.builder import main

sys.exit(main())
