"""python -m pipeline.egoclip: the EgoClip build (pipeline/egoclip/cli.py)."""

import sys

from pipeline.egoclip.cli import main

sys.exit(main())
