"""python -m pipeline.egoexoclip: the Ego-ExoClip build (pipeline/egoexoclip/cli.py)."""

import sys

from pipeline.egoexoclip.cli import main

sys.exit(main())
