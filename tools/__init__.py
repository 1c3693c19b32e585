"""Tooling around the product packages: the bundled sample releases, the benches and the build report.

    tools/samples/   the sample-release generators (one per builder) and their annotation rows
    tools/bench/     `make bench` (every builder against its codec limit, the video2dataset peer), the loader
                     and training benches
    tools/report.py  `make report`: the visual audit of an Ego-ExoClip build

Nothing under pipeline/ or exo2ego_model/ imports this package (tests/test_tools_layout.py checks it).
"""
