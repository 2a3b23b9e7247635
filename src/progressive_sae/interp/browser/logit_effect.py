"""The tokens a latent promotes and suppresses: its decoder row through the LM's final norm
and unembedding (the "logit lens" of one direction).

The final norm is applied as `norm(s·d) − norm(0)`: that drops LayerNorm's bias (the same
shift for every latent, which would otherwise rank tokens by the bias alone) and works for
LayerNorm and RMSNorm alike; `s = √d_model` gives the direction a typical residual norm so
the norm's ε does not matter. The unembedding's bias, if any, is left out for the same
reason. Logit soft-capping (Gemma-2) is monotonic and does not change the ranking.
"""

from __future__ import annotations

import torch
from torch import nn

from progressive_sae.errors import PSAEError

FINAL_NORM_PATHS = (
    "transformer.ln_f",  # GPT-2, GPT-J, Bloom, Falcon
    "gpt_neox.final_layer_norm",  # GPT-NeoX, Pythia
    "model.norm",  # Llama, Mistral, Qwen, Gemma, Gemma-2
    "model.decoder.final_layer_norm",  # OPT
    "model.language_model.norm",  # multimodal wrappers
)
"""Where the usual architectures keep the norm before the unembedding."""

LOGITS_BLOCK_ELEMENTS = 1 << 25
"""At most this many logits are held at once (rows per block = this / vocabulary size)."""


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied to the residual stream before the unembedding."""
    for path in FINAL_NORM_PATHS:
        try:
            return model.get_submodule(path)
        except AttributeError:
            continue
    raise PSAEError(f"model {type(model).__name__}: found no final norm at any of "
                    f"{list(FINAL_NORM_PATHS)}")


@torch.no_grad()
def logit_effects(
    lm, W_dec: torch.Tensor, latents: torch.Tensor, count: int = 10,
    vocab_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(promoted ids, their logits, suppressed ids, their logits), each [L, count], for the
    decoder rows `latents` of W_dec; most promoted / most suppressed first.

    `lm` is a `progressive_sae.lm.LanguageModel`; `vocab_size` limits the tokens considered
    (the unembedding may hold padding rows beyond the tokenizer's vocabulary)."""
    model = lm.model
    head = model.get_output_embeddings()
    if head is None or getattr(head, "weight", None) is None:
        raise PSAEError(f"model {lm.name!r} has no output embeddings (lm_head)")
    W_U = head.weight.detach().float()
    if vocab_size is not None:
        W_U = W_U[:vocab_size]
    if W_dec.shape[1] != W_U.shape[1]:
        raise PSAEError(f"the SAE's d_in={W_dec.shape[1]} differs from model {lm.name!r}'s "
                        f"d_model={W_U.shape[1]}: expected the LM whose activations it reads")
    norm = final_norm(model).float()
    device = W_U.device
    latents = torch.as_tensor(latents, dtype=torch.long).reshape(-1)
    count = min(count, W_U.shape[0])
    scale = W_dec.shape[1] ** 0.5
    zero = norm(torch.zeros(1, W_dec.shape[1], device=device))
    rows_per_block = max(1, LOGITS_BLOCK_ELEMENTS // W_U.shape[0])
    out: list[list[torch.Tensor]] = [[], [], [], []]
    for start in range(0, latents.numel(), rows_per_block):
        d = W_dec[latents[start:start + rows_per_block]].detach().float().to(device)
        d = d / torch.linalg.vector_norm(d, dim=1, keepdim=True).clamp_min(1e-12) * scale
        logits = (norm(d) - zero) @ W_U.T
        top = logits.topk(count, dim=1)
        bottom = logits.topk(count, dim=1, largest=False)
        for part, tensor in zip(out, (top.indices, top.values, bottom.indices, bottom.values)):
            part.append(tensor.cpu())
    if not out[0]:
        empty = torch.empty(0, count)
        return empty.long(), empty, empty.long(), empty
    ids_up, up, ids_down, down = (torch.cat(part) for part in out)
    return ids_up, up, ids_down, down
