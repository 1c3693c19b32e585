"""The three Exo2Ego losses as pure functions of tensors (no modules, no state), small enough to check by hand.

Shape suffixes: B batch, L sequence length, V vocabulary, N visual tokens, C visual feature dim.

- vtg_loss: vision-grounded text generation = next-token cross-entropy on target tokens only.
- kl_loss: KL(teacher || student) between softmax distributions over the feature dim, per visual token.
- cycle_loss: L1 cycle consistency of the two mapping networks, |G(F(x)) - x|_1 + |F(G(y)) - y|_1.
All losses are computed in float32 whatever the model dtype (bf16 log-softmax over a 32k vocabulary is lossy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label of every position that is not a target (prompt, padding, visual tokens)


def vtg_loss(logits_BLV: torch.Tensor, labels_BL: torch.Tensor) -> torch.Tensor:
    """Causal-LM cross-entropy: position t predicts labels[t + 1]; mean over the target tokens of the batch.

    Positions whose *next* label is IGNORE_INDEX contribute nothing, so logits there may be anything.
    A batch without any target token gives 0 (connected to the graph) rather than NaN, so one odd batch
    cannot poison a run.
    """
    logits_BLV = logits_BLV[:, :-1].float()
    targets_BL = labels_BL[:, 1:]
    total = F.cross_entropy(
        logits_BLV.reshape(-1, logits_BLV.shape[-1]),
        targets_BL.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    n_targets = (targets_BL != IGNORE_INDEX).sum().clamp(min=1)
    return total / n_targets


def kl_loss(teacher_BNC: torch.Tensor, student_BNC: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)) over the feature dim C, mean over tokens and batch.

    The teacher is the target distribution: pass it detached if it should not learn from this term.
    No T^2 factor (Hinton distillation rescales by it); the stage's loss weight sets the scale instead.
    """
    log_p_BNC = F.log_softmax(teacher_BNC.float() / temperature, dim=-1)
    log_q_BNC = F.log_softmax(student_BNC.float() / temperature, dim=-1)
    kl_BN = (log_p_BNC.exp() * (log_p_BNC - log_q_BNC)).sum(dim=-1)
    return kl_BN.mean()


def cycle_loss(
    x_BNC: torch.Tensor, gfx_BNC: torch.Tensor, y_BNC: torch.Tensor, fgy_BNC: torch.Tensor
) -> torch.Tensor:
    """|G(F(x)) - x|_1 + |F(G(y)) - y|_1, each the mean absolute error over all elements.

    x: ego features, gfx = G(F(x)) its round trip; y: exo features, fgy = F(G(y)) its round trip.
    """
    ego_cycle = (gfx_BNC.float() - x_BNC.float()).abs().mean()
    exo_cycle = (fgy_BNC.float() - y_BNC.float()).abs().mean()
    return ego_cycle + exo_cycle
