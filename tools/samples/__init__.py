"""The bundled sample releases: small, deterministic stand-ins for each builder's real download.

    python -m tools.samples.egoexoclip --out DIR   an Ego-Exo4D release (egoexoclip.py, egoexo4d_*.py)
    python -m tools.samples.egoit --out DIR        the EgoIT mini-release (real rows: rows/egoit/)
    python -m tools.samples.egobench --out DIR     the EgoBench mini-benchmark (real rows: rows/egobench/)
    python -m tools.samples.egoclip --out DIR      the EgoClip sample (synthetic rows)

Every video frame is stamped (stamped_video.py, pipeline/core/framecode.py) so that a test can say which file
and which frame an output clip shows; encodes are bit-exact, so two runs write identical bytes.
"""

DATASETS = ("egoexoclip", "egoit", "egobench", "egoclip")
