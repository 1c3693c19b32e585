"""Configuration: one dataclass per component, validated when built; errors name the field and the value.

A run is a list of stages; each stage names its data, what is trained (everything else is frozen), its losses
and weights, and its optimisation schedule. Defaults are the paper's (docs/training.md; ../shared/docs/exo2ego-method.md has the paper's numbers).
Configs are YAML files (configs/*.yaml) loaded with `load_run_config` / `load_stage_config`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# The model's trainable groups; a stage's `trainable` lists some of them, the rest are frozen.
MODULE_GROUPS = ("exo_tower", "ego_tower", "projector", "map_f", "map_g", "llm", "lora")
LOSSES = ("vtg", "kl", "cycle")
STAGE_DATA = ("exo", "pairs", "instruct", "ego")


class ConfigError(ValueError):
    pass


def _check(cond: bool, where: str, value, why: str) -> None:
    if not cond:
        raise ConfigError(f"{where}={value!r}: {why}")


CONNECTORS = ("stc", "stc_v35", "mlp")
MAPPINGS = ("resnet", "mlp")
VISUAL_INPUTS = ("x+Fx", "x")
# how a frame becomes square (video.fit_square): "pad" with the CLIP mean colour (VideoLLaMA2), "crop" the centre
ASPECTS = ("pad", "crop")


@dataclass(frozen=True)
class ModelConfig:
    # A local directory (from_pretrained) or "tiny" for a small random model built in code.
    vision_tower: str = "openai/clip-vit-large-patch14-336"
    llm: str = "mistralai/Mistral-7B-Instruct-v0.2"
    # A VideoLLaMA2 checkpoint directory (config.json + safetensors) whose vision tower, connector and LLM
    # initialise the exo branch (the ego tower then copies the exo one); "" keeps vision_tower / llm weights.
    # When set, the LLM's architecture and tokenizer come from this directory (llm is not read) and
    # vision_tower gives the tower's architecture only (its config.json: CLIP-L/336's folder), as VideoLLaMA2.
    videollama2: str = ""
    n_frames: int = 16
    image_size: int = 336
    # frames to squares, in training, evaluation and the lmms-eval adapter alike (video.fit_square): "pad" to a
    # square with the CLIP mean colour, then resize (VideoLLaMA2's image_aspect_ratio: pad), or "crop" the centre
    aspect: str = "pad"
    feature_layer: int = -2  # CLIP hidden_states index the features come from (VideoLLaMA2: select_layer -2)
    # Visual features -> LLM tokens. "stc": VideoLLaMA2's STC connector (mm_projector_type stc_connector: RegNet
    # stage, Conv3d 2x2x2 with padding 1, RegNet stage, MLP); "stc_v35": its stc_connector_v35 (padding 0);
    # "mlp": grid pooled to pool_side^2 per frame, temporal_stride frames averaged, 2-layer MLP.
    connector: str = "stc"
    connector_depth: int = 4  # RegNet blocks per STC stage (VideoLLaMA2: 4)
    connector_width: int = 0  # STC channels; 0 = the LLM width, as VideoLLaMA2
    pool_side: int = 4  # "mlp" connector: patch grid pooled to pool_side x pool_side tokens per frame
    temporal_stride: int = 2  # "mlp" connector: frames merged per visual token group (16 frames -> 8 steps)
    # F (ego -> exo) and G (exo -> ego). "resnet": CycleGAN ResNet-generator shape over each frame's feature
    # grid (the paper: residual blocks with down- and up-sampling); "mlp": per-token residual MLP blocks.
    mapping: str = "resnet"
    mapping_blocks: int = 9  # residual blocks of F and G (the paper: 9)
    mapping_bottleneck: int = 4  # feature dim / channels after F's and G's input projection
    mapping_downsample: int = 2  # "resnet": stride-2 down-samplings (each doubling channels) before the blocks
    kl_temperature: float = 1.0
    visual_input: str = "x+Fx"  # what the LLM sees of an ego clip: "x+Fx" (paper) or "x"
    dtype: str = "bfloat16"  # weights dtype on GPU; CPU runs use float32

    def __post_init__(self):
        _check(self.n_frames >= 1, "model.n_frames", self.n_frames, "must be >= 1")
        _check(self.image_size >= 8, "model.image_size", self.image_size, "must be >= 8")
        _check(
            self.temporal_stride >= 1 and self.n_frames % self.temporal_stride == 0,
            "model.temporal_stride",
            self.temporal_stride,
            f"must divide n_frames={self.n_frames}",
        )
        _check(self.feature_layer != 0, "model.feature_layer", self.feature_layer, "0 is the embeddings")
        _check(self.aspect in ASPECTS, "model.aspect", self.aspect, f"expected one of {ASPECTS}")
        _check(self.connector in CONNECTORS, "model.connector", self.connector, f"expected one of {CONNECTORS}")
        _check(self.connector_depth >= 0, "model.connector_depth", self.connector_depth, "must be >= 0")
        _check(self.connector_width >= 0, "model.connector_width", self.connector_width, "must be >= 0")
        _check(self.pool_side >= 1, "model.pool_side", self.pool_side, "must be >= 1")
        _check(self.mapping in MAPPINGS, "model.mapping", self.mapping, f"expected one of {MAPPINGS}")
        _check(self.mapping_blocks >= 1, "model.mapping_blocks", self.mapping_blocks, "must be >= 1")
        _check(
            self.mapping_bottleneck >= 1, "model.mapping_bottleneck", self.mapping_bottleneck, "must be >= 1"
        )
        _check(self.mapping_downsample >= 0, "model.mapping_downsample", self.mapping_downsample, "must be >= 0")
        _check(self.kl_temperature > 0, "model.kl_temperature", self.kl_temperature, "must be > 0")
        _check(
            self.visual_input in VISUAL_INPUTS,
            "model.visual_input",
            self.visual_input,
            f"expected one of {VISUAL_INPUTS}",
        )
        _check(self.dtype in ("bfloat16", "float16", "float32"), "model.dtype", self.dtype, "unknown dtype")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 128
    alpha: int = 256
    dropout: float = 0.1
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )

    def __post_init__(self):
        _check(self.r >= 1, "lora.r", self.r, "must be >= 1")
        _check(0 <= self.dropout < 1, "lora.dropout", self.dropout, "must be in [0, 1)")


@dataclass(frozen=True)
class DataConfig:
    shards: str = ""  # brace pattern, list file, or URL (http(s)://, pipe:, gs://, s3://) of .tar shards
    n_frames: int = 16
    image_size: int = 336
    shuffle_buffer: int = 1000
    resampled: bool = (
        False  # infinite resampling of shards (multi-node epochs); then epoch_samples is required
    )
    epoch_samples: int = 0  # samples per epoch when resampled (0: one pass over the shards)
    num_workers: int = 4
    prompt: str = "Describe what the camera-wearer is doing in the video."
    max_text_tokens: int = 128
    seed: int = 0

    def __post_init__(self):
        _check(self.n_frames >= 1, "data.n_frames", self.n_frames, "must be >= 1")
        _check(self.image_size >= 8, "data.image_size", self.image_size, "must be >= 8")
        _check(self.shuffle_buffer >= 0, "data.shuffle_buffer", self.shuffle_buffer, "must be >= 0")
        _check(self.num_workers >= 0, "data.num_workers", self.num_workers, "must be >= 0")
        _check(
            not self.resampled or self.epoch_samples > 0,
            "data.epoch_samples",
            self.epoch_samples,
            "must be > 0 when data.resampled is true",
        )
        _check(self.max_text_tokens >= 4, "data.max_text_tokens", self.max_text_tokens, "must be >= 4")


# ---- what a stage trains, and how fast: the optimiser's parameter groups (exo2ego_model/optim.py) -------------
# docs/training.md "What each stage trains". Each trainable group of MODULE_GROUPS belongs to one optimiser
# module, whose lr and weight decay StageConfig.param_groups sets; norms, biases and embeddings never decay.
VISION_TOWERS = ("exo_tower", "ego_tower")
OPTIM_MODULE = {
    "exo_tower": "vision_tower",
    "ego_tower": "vision_tower",
    "projector": "connector",
    "map_f": "mapping",
    "map_g": "mapping",
    "lora": "lora",
    "llm": "llm",
}
# A trained CLIP tower's lr unless set: min(stage lr / 10, this). VideoLLaMA2 never trains its tower; CLIP
# ViT-L fine-tuning works at 1e-5 and below, and the stage lrs of the paper (1e-3 / 1e-4) would wreck it.
VISION_TOWER_MAX_LR = 1e-5


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_lr(value, where: str) -> None:
    text = " (YAML reads 1e-5 as text: write 1.0e-5)" if isinstance(value, str) else ""
    _check(_number(value) and value > 0, where, value, "must be a number > 0" + text)


def check_weight_decay(value, where: str) -> None:
    _check(_number(value) and value >= 0, where, value, "must be a number >= 0")


@dataclass(frozen=True)
class GroupOptim:
    """lr and weight decay of one optimiser module; None takes the stage's (the vision tower's lr: see
    VISION_TOWER_MAX_LR). Norms, biases and embeddings of the module get weight decay 0 whatever this says."""

    lr: float | None = None
    weight_decay: float | None = None


@dataclass(frozen=True)
class ParamGroups:
    vision_tower: GroupOptim = field(default_factory=GroupOptim)  # exo_tower, ego_tower
    connector: GroupOptim = field(default_factory=GroupOptim)  # projector
    mapping: GroupOptim = field(default_factory=GroupOptim)  # map_f, map_g
    lora: GroupOptim = field(default_factory=GroupOptim)  # LoRA adapters in the llm
    llm: GroupOptim = field(default_factory=GroupOptim)  # the llm's own weights

    def check(self, where: str) -> None:
        for module in sorted(set(OPTIM_MODULE.values())):
            group = getattr(self, module)
            if group.lr is not None:
                check_lr(group.lr, f"{where}.{module}.lr")
            if group.weight_decay is not None:
                check_weight_decay(group.weight_decay, f"{where}.{module}.weight_decay")


@dataclass(frozen=True)
class StageConfig:
    name: str
    data_kind: str  # "exo" (stage 1), "pairs" (stage 2), "instruct" (stage 3)
    trainable: tuple[str, ...]
    losses: dict[str, float]  # loss name -> weight
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings | None = None
    global_batch: int = 256
    micro_batch: int = 8  # per GPU
    lr: float = 1e-4  # every module's lr unless param_groups sets one (the vision tower's is lower)
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = 0  # > 0 caps the optimizer steps (smoke runs, benchmarks)
    weight_decay: float = 0.0  # of matrices (VideoLLaMA2: 0); norms, biases, embeddings: never
    grad_clip: float = 1.0
    checkpoint_every: int = 500  # optimizer steps
    keep_checkpoints: int = 2  # the newest N step checkpoints are kept, older ones deleted
    log_every: int = 10
    # what the LLM sees of an ego clip in this stage: "" = model.visual_input; "x" for the initialisation
    # stage, which trains the connector (and the ego tower with train_vision_tower) before F exists
    visual_input: str = ""
    # Whether the vision towers named in `trainable` train (else they stay frozen: no gradient, not in the
    # optimiser). None: false for the initialisation and stage 1 (data_kind ego / exo: the connector learns the
    # towers' features, as in VideoLLaMA2, which never trains its tower), true for stages 2 and 3 (the paper
    # trains the ego encoder there). True trains them at param_groups.vision_tower.lr.
    train_vision_tower: bool | None = None
    # lr / weight decay per optimiser module; unset ones take `lr` / `weight_decay` (the vision tower's lr:
    # min(lr / 10, VISION_TOWER_MAX_LR)), e.g. {vision_tower: {lr: 2.0e-6}, lora: {lr: 1.0e-4}}
    param_groups: ParamGroups = field(default_factory=ParamGroups)

    def __post_init__(self):
        _check(
            self.data_kind in STAGE_DATA,
            f"stage[{self.name}].data_kind",
            self.data_kind,
            f"expected one of {STAGE_DATA}",
        )
        for g in self.trainable:
            _check(
                g in MODULE_GROUPS,
                f"stage[{self.name}].trainable",
                g,
                f"expected groups from {MODULE_GROUPS}",
            )
        _check(bool(self.trainable), f"stage[{self.name}].trainable", self.trainable, "nothing to train")
        for name, w in self.losses.items():
            _check(name in LOSSES, f"stage[{self.name}].losses", name, f"expected losses from {LOSSES}")
            _check(w >= 0, f"stage[{self.name}].losses.{name}", w, "weight must be >= 0")
        _check(bool(self.losses), f"stage[{self.name}].losses", self.losses, "no loss")
        needs_pairs = {"kl", "cycle"} & set(self.losses)
        _check(
            not needs_pairs or self.data_kind == "pairs",
            f"stage[{self.name}].losses",
            sorted(needs_pairs),
            "kl and cycle need data_kind pairs",
        )
        _check(
            ("lora" in self.trainable) == (self.lora is not None),
            f"stage[{self.name}].lora",
            self.lora,
            "give lora settings exactly when 'lora' is trainable",
        )
        _check(self.global_batch >= 1, f"stage[{self.name}].global_batch", self.global_batch, "must be >= 1")
        _check(self.micro_batch >= 1, f"stage[{self.name}].micro_batch", self.micro_batch, "must be >= 1")
        check_lr(self.lr, f"stage[{self.name}].lr")
        check_weight_decay(self.weight_decay, f"stage[{self.name}].weight_decay")
        self.param_groups.check(f"stage[{self.name}].param_groups")
        _check(
            self.train_vision_tower is None or isinstance(self.train_vision_tower, bool),
            f"stage[{self.name}].train_vision_tower",
            self.train_vision_tower,
            "expected true, false or null (the stage's default)",
        )
        _check(
            bool(self.trained),
            f"stage[{self.name}].trainable",
            self.trainable,
            "nothing trains: its vision towers are frozen (train_vision_tower false)",
        )
        _check(
            0 <= self.warmup_ratio < 1,
            f"stage[{self.name}].warmup_ratio",
            self.warmup_ratio,
            "must be in [0, 1)",
        )
        _check(self.epochs > 0, f"stage[{self.name}].epochs", self.epochs, "must be > 0")
        _check(self.grad_clip >= 0, f"stage[{self.name}].grad_clip", self.grad_clip, "must be >= 0")
        _check(
            self.keep_checkpoints >= 1, f"stage[{self.name}].keep_checkpoints", self.keep_checkpoints, "must be >= 1"
        )
        _check(
            self.visual_input in ("", "x", "x+Fx"),
            f"stage[{self.name}].visual_input",
            self.visual_input,
            "expected '', x or x+Fx",
        )

    @property
    def trains_vision_tower(self) -> bool:
        if self.train_vision_tower is None:
            return self.data_kind not in ("ego", "exo")
        return self.train_vision_tower

    @property
    def trained(self) -> tuple[str, ...]:
        """The groups of `trainable` that train: its vision towers only when trains_vision_tower."""
        return tuple(g for g in self.trainable if self.trains_vision_tower or g not in VISION_TOWERS)

    def group_lr(self, group: str) -> float:
        """The lr of a trainable group (of MODULE_GROUPS): its module's, else the stage's."""
        module = OPTIM_MODULE[group]
        lr = getattr(self.param_groups, module).lr
        if lr is not None:
            return lr
        return min(self.lr / 10, VISION_TOWER_MAX_LR) if module == "vision_tower" else self.lr

    def group_weight_decay(self, group: str) -> float:
        """The weight decay of a group's matrices (its norms, biases and embeddings get none)."""
        wd = getattr(self.param_groups, OPTIM_MODULE[group]).weight_decay
        return self.weight_decay if wd is None else wd

    def accumulation_steps(self, world_size: int) -> int:
        per_step = self.micro_batch * world_size
        _check(
            self.global_batch % per_step == 0,
            f"stage[{self.name}].global_batch",
            self.global_batch,
            f"must be a multiple of micro_batch x world size = {per_step}",
        )
        return self.global_batch // per_step


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    stages: tuple[StageConfig, ...]
    output_dir: str = "runs/exo2ego"
    parallel: str = "auto"  # "auto" (FSDP for the LLM when > 1 GPU, else DDP), "ddp", "fsdp", "none"
    seed: int = 0
    # ---- memory (exo2ego_model/plan.py, docs/training.md "Memory planner") ----
    # Recompute the LLM's decoder layers and a trained vision tower's layers in the backward: "auto" = on
    # where the planner says a stage's micro-batch does not fit without it (on the GPU's memory, or
    # gpu_memory_gib), "on", "off".
    activation_checkpointing: str = "auto"
    # GiB per GPU for the planner when torch.cuda cannot tell (0: torch.cuda's, or no check without a GPU)
    gpu_memory_gib: float = 0.0

    def __post_init__(self):
        _check(bool(self.stages), "run.stages", self.stages, "no stages")
        _check(
            self.parallel in ("auto", "ddp", "fsdp", "none"),
            "run.parallel",
            self.parallel,
            "expected auto, ddp, fsdp or none",
        )
        _check(
            self.activation_checkpointing in ("auto", "on", "off"),
            "run.activation_checkpointing",
            self.activation_checkpointing,
            "expected auto, on or off",
        )
        _check(self.gpu_memory_gib >= 0, "run.gpu_memory_gib", self.gpu_memory_gib, "must be >= 0")

    def stage(self, name_or_index: str | int) -> StageConfig:
        for i, s in enumerate(self.stages, start=1):
            if str(name_or_index) in (s.name, str(i)):
                return s
        raise ConfigError(f"stage={name_or_index!r}: no such stage (have {[s.name for s in self.stages]})")


def _build(cls, raw, where: str):
    """Dict -> dataclass, recursively; unknown keys are errors naming them."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}={raw!r}: expected a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} (known: {sorted(names)})")
    kwargs = {}
    for key, value in raw.items():
        hint = hints[key]
        inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value, f"{where}.{key}")
        elif inner and value is not None:
            value = _build(inner[0], value, f"{where}.{key}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None


def _read_yaml(path: str | Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None


def load_stage_config(path: str | Path, overrides: dict | None = None) -> StageConfig:
    raw = {**_read_yaml(path), **(overrides or {})}
    return _build(StageConfig, raw, f"{path}")


def load_run_config(path: str | Path) -> RunConfig:
    """A run file: {model: {...}, output_dir, parallel, stages: [<stage yaml path or inline mapping>, ...],
    data: {...} (defaults applied under each stage's data)}. Stage paths are relative to the run file."""
    path = Path(path)
    raw = _read_yaml(path)
    stages = []
    shared_data = raw.pop("data", {}) or {}
    for i, entry in enumerate(raw.pop("stages", []) or []):
        stage_raw = _read_yaml(path.parent / entry) if isinstance(entry, str) else dict(entry)
        stage_raw["data"] = {**shared_data, **(stage_raw.get("data") or {})}
        stages.append(_build(StageConfig, stage_raw, f"{path}:stages[{i}]"))
    model = _build(ModelConfig, raw.pop("model", {}) or {}, f"{path}:model")
    return RunConfig(
        model=model,
        stages=tuple(stages),
        **_only(raw, {"output_dir", "parallel", "seed", "activation_checkpointing", "gpu_memory_gib"}, path),
    )


def _only(raw: dict, allowed: set[str], where) -> dict:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {unknown} (known: {sorted(allowed | {'model', 'stages', 'data'})})"
        )
    return raw
