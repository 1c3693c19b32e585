"""python -m pipeline.egoexoclip: the Ego-ExoClip build (pipeline/egoexoclip/builder.py)."""

import sys

from pipeline.egoexoclip.builder import main

sys.exit(main())
