"""python -m exo2ego_model.eval: EgoBench evaluation of a checkpoint (exo2ego_model/eval/run.py)."""

import sys

from exo2ego_model.eval.run import main

sys.exit(main())
