"""`python -m exo2ego_model.eval --plan` (`make eval ARGS=--plan`): what the full EgoBench costs, before running.

Per task, for the REAL benchmark sizes (REAL_SIZES, with the source of each count), the protocol of run.py
(protocol.py) as forward passes: prefix encodes (video + prompt through the LLM once: one for the greedy
generation, one for the ranking / scoring prompt; EgoMCQ one per candidate clip), candidate scorings (options,
vocabulary answers, class names, sentences) and the candidate passes they take (chunks of --candidate-batch
packed over one shared prefix, inference.score), decode steps (greedy generation), then projected GPU-hours.

The cost model, per token of the configured model (configs/run.yaml: Mistral-7B, 16 frames of 336 px through
the STC connector, x+Fx = twice the connector's tokens):
- prefill tokens (prefixes and packed candidates): 2 x LLM parameters FLOPs per token plus attention,
  4 x layers x width FLOPs per key attended (a prefix token attends half the prefix on average, a candidate
  token the whole prefix and its packed chunk), at an assumed 40 % of the GPU's dense bf16 peak (H100 SXM: 989
  TFLOPS, NVIDIA's H100 datasheet, dense = half the sparsity figure): ~27,000 tokens/s for 7.24 B parameters
  before attention. An ASSUMPTION, not a measurement (no GPU was available when this was
  written): --pass-ms replaces it with a measured time per prefix pass (e.g. `make bench-eval` on the GPU,
  whose "prefix pass" line is that figure for its model), scaled per token.
- decode steps: DECODE_MS per generated token (batch 1, HF generate-style loop, memory-bound: 14.5 GB of bf16
  weights read per step at ~3.35 TB/s is ~4.3 ms; 25 ms allows for the Python loop and the cache). Also an
  assumption.
- the vision tower and connector are left out (one CLIP-L pass per clip: well under 1 % of a 7B prefix).
Candidate token lengths per task are estimates (CANDIDATE_TOKENS: Mistral tokens of a typical option + eos).
"""

from __future__ import annotations

from dataclasses import dataclass

MISTRAL_7B_PARAMS = 7.24e9
MISTRAL_7B_LAYERS, MISTRAL_7B_WIDTH = 32, 4096
H100_BF16_DENSE_TFLOPS = 989.0
ASSUMED_MFU = 0.40
DECODE_MS = 25.0
PROMPT_TOKENS = 60  # [INST] ... question / options ... [/INST] around the video tokens (options: +100 below)


@dataclass(frozen=True)
class TaskSize:
    items: int
    source: str
    candidates: (
        int  # candidates scored per item (options, vocabulary, classes, sentences; EgoMCQ: 1 per clip)
    )
    candidate_tokens: int  # tokens per candidate (estimate, eos included)
    prefixes: int  # prefix encodes per item
    decode_tokens: int  # greedy tokens per item (generation protocol; 0 for scoring-only tasks)


DOCS = "docs/egobench.md (real-file counts)"
UNVERIFIED = "published figure, not verified in this repo"
REAL_SIZES: dict[str, TaskSize] = {
    "egoschema": TaskSize(5031, f"{DOCS}: questions.json, 5,031 (500 with public answers)", 5, 20, 2, 2),
    "qaego4d_closed": TaskSize(1854, f"QaEgo4D test, {UNVERIFIED}", 4, 8, 2, 2),
    "qaego4d_open": TaskSize(1854, f"QaEgo4D test, {UNVERIFIED}", 0, 0, 1, 12),
    "egotaskqa_direct": TaskSize(
        8000, f"EgoTaskQA direct test, order of magnitude ({UNVERIFIED})", 4000, 3, 2, 3
    ),
    "egotaskqa_indirect": TaskSize(
        8000, f"EgoTaskQA indirect test, order of magnitude ({UNVERIFIED})", 4000, 3, 2, 3
    ),
    "egotaskqa_mcq": TaskSize(8783, f"{DOCS}: EgoTaskQA MCQ 8,783", 5, 6, 2, 2),
    "charades_ego": TaskSize(847, f"CharadesEgo_v1_test_only1st, {UNVERIFIED}", 157, 7, 1, 0),
    "epic_mir": TaskSize(9668, f"{DOCS}: 9,668 segments x 3,842 sentences", 3842, 7, 1, 0),
    "egoplan": TaskSize(3355, f"{DOCS}: EgoPlan v1 validation 3,355", 4, 8, 2, 2),
    "vlnqa": TaskSize(200, f"{DOCS}: VLN-QA 200", 4, 4, 2, 2),
    "egomcq": TaskSize(39751, f"EgoMCQ (EgoVLP egomcq.json), {UNVERIFIED}", 5, 10, 5, 0),
}
# The choice tasks' generation prompt lists the options: ~100 more prompt tokens on one of their two prefixes.
OPTIONS_PROMPT_TOKENS = 100


def _attention(keys: float) -> float:
    """Attention FLOPs of one token attending `keys` keys, relative to its 2 x parameters FLOPs."""
    return 4 * MISTRAL_7B_LAYERS * MISTRAL_7B_WIDTH * keys / (2 * MISTRAL_7B_PARAMS)


def visual_tokens(model_cfg) -> int:
    """LLM tokens per clip of the configured model (connector.py's n_tokens; x+Fx doubles them)."""
    T, side = model_cfg.n_frames, model_cfg.image_size // 14  # CLIP-L/14 patches per side
    if model_cfg.connector in ("stc", "stc_v35"):
        pad = 1 if model_cfg.connector == "stc" else 0
        n = ((T + 2 * pad - 2) // 2 + 1) * ((side + 2 * pad - 2) // 2 + 1) ** 2
    else:
        n = (T // model_cfg.temporal_stride) * model_cfg.pool_side**2
    return n * (2 if model_cfg.visual_input == "x+Fx" else 1)


def plan(model_cfg, candidate_batch: int, shortlist: int = 0, pass_ms: float | None = None) -> dict:
    """Rows per task and the totals; `per_token_s` from pass_ms (a measured prefix pass) or the assumption."""
    n_visual = visual_tokens(model_cfg)
    prefix_tokens = n_visual + PROMPT_TOKENS
    if pass_ms:
        per_token_s = pass_ms / 1e3 / (prefix_tokens * (1 + _attention(prefix_tokens / 2)))
        source = f"--pass-ms {pass_ms:g} per {prefix_tokens}-token prefix"
    else:
        per_token_s = 2 * MISTRAL_7B_PARAMS / (H100_BF16_DENSE_TFLOPS * 1e12 * ASSUMED_MFU)
        source = (
            f"ASSUMED: Mistral-7B on one H100 SXM, 2 x {MISTRAL_7B_PARAMS:.3g} FLOPs/token at "
            f"{ASSUMED_MFU:.0%} of {H100_BF16_DENSE_TFLOPS:g} TFLOPS bf16 dense (not measured)"
        )
    rows = {}
    for task, s in REAL_SIZES.items():
        cands = s.candidates
        if task == "epic_mir" and 0 < shortlist < cands:
            cands = shortlist
        scorings = s.items * cands
        per_item_chunks = (
            0 if not cands else (s.prefixes if task == "egomcq" else -(-cands // candidate_batch))
        )
        prefill = s.items * (s.prefixes * prefix_tokens + (OPTIONS_PROMPT_TOKENS if s.decode_tokens else 0))
        cand_tokens = scorings * max(s.candidate_tokens - 1, 0)  # the last token of a candidate is never fed
        chunk_tokens = min(cands, candidate_batch) * s.candidate_tokens
        if task == "epic_mir":
            prefill += PROMPT_TOKENS + s.candidates * s.candidate_tokens  # the prior: once per run (mir.py)
        work = prefill * (1 + _attention(prefix_tokens / 2)) + cand_tokens * (
            1 + _attention(prefix_tokens + chunk_tokens)
        )
        decode_s = s.items * s.decode_tokens * DECODE_MS / 1e3
        seconds = work * per_token_s + decode_s
        # the same protocol with the prefix re-encoded for every candidate (no shared KV cache)
        gen_prefixes = 0 if task == "egomcq" or not s.decode_tokens else 1
        again = scorings * (prefix_tokens + s.candidate_tokens - 1) * (1 + _attention(prefix_tokens / 2))
        again += (
            s.items
            * gen_prefixes
            * (prefix_tokens + OPTIONS_PROMPT_TOKENS)
            * (1 + _attention(prefix_tokens / 2))
        )
        rows[task] = {
            "items": s.items,
            "source": s.source,
            "prefix_encodes": s.items * s.prefixes,
            "candidate_scorings": scorings,
            "candidate_passes": s.items * per_item_chunks,
            "decode_steps": s.items * s.decode_tokens,
            "forward_passes": s.items * (s.prefixes + per_item_chunks + s.decode_tokens),
            "tokens": prefill + cand_tokens,
            "gpu_hours": seconds / 3600,
            "gpu_hours_reencoded": (again * per_token_s + decode_s) / 3600,
        }
    total = {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values())) if k not in ("source",)}
    return {
        "visual_tokens": n_visual,
        "prefix_tokens": prefix_tokens,
        "per_token_ms": per_token_s * 1e3,
        "pass_source": source,
        "decode_ms": DECODE_MS,
        "candidate_batch": candidate_batch,
        "shortlist": shortlist,
        "rows": rows,
        "total": total,
    }


def render(p: dict) -> str:
    lines = [
        f"EgoBench cost plan, real sizes: {p['visual_tokens']} visual tokens + ~{PROMPT_TOKENS} prompt tokens "
        f"per prefix; candidates packed {p['candidate_batch']} per pass over one shared prefix"
        + (f"; EPIC MIR shortlist k={p['shortlist']}" if p["shortlist"] else "; EPIC MIR: every sentence"),
        f"time per token: {p['per_token_ms']:.4f} ms ({p['pass_source']}); decode: {p['decode_ms']:g} ms/token "
        "(assumed)",
        "",
        "| task | items | prefix encodes | candidate scorings | candidate passes | decode steps | forward passes "
        "| GPU-hours | GPU-hours, prefix re-encoded per candidate | items from |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, r in [*p["rows"].items(), ("total", {**p["total"], "source": ""})]:
        lines.append(
            f"| {task} | {r['items']:,} | {r['prefix_encodes']:,} | {r['candidate_scorings']:,} "
            f"| {r['candidate_passes']:,} | {r['decode_steps']:,} | {r['forward_passes']:,} "
            f"| {r['gpu_hours']:.1f} | {r['gpu_hours_reencoded']:,.0f} | {r['source']} |"
        )
    return "\n".join(lines) + "\n"


def print_plan(cfg) -> int:
    """The --plan command: the configured model (configs/run.yaml's model section) at the real sizes."""
    from exo2ego_model.config import load_run_config

    from .protocol import REPO

    model_cfg = load_run_config(REPO / "configs" / "run.yaml").model
    print(render(plan(model_cfg, cfg.candidate_batch, cfg.shortlist, cfg.pass_ms)), end="")
    return 0
