"""Expected values of digits at many positions of ONE forward pass (Bills et al.'s "all at once").

The sequence is the chat prompt followed by the assistant parts, each part tokenized on its
own and appended: every part's end is then a token boundary by construction, whatever BPE
would merge across it in one joint tokenization ("cat" + "s\t" stays [cat][s][\t], never
[cats][\t]), so the logits after a part are exactly what a model that had written the text so
far would see before writing a value.

A value whose text is several tokens (SmolLM2 and Llama-3 split "10" into "1", "0") is read
in the same pass through a token tree: after each part's end, extra tokens are appended (one
per proper prefix of a multi-token value, e.g. "1") that attend only to the text up to that
end and to their own tree ancestors, at the positions they would have there (a 4-D attention
mask and explicit position ids). Then P("10") = P("1")·P("0" | …"1") and, because "1" is also
a value, P("1") becomes P("1")·(1 − P("0" | …"1")): "1" followed by a token that does not
continue any longer value. The expectation is over the values' probabilities renormalised to
sum to one (mass on non-value tokens is ignored, as in Bills et al.).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from progressive_sae.errors import PSAEError


def encode_continuation(tokenizer, text: str) -> list[int]:
    """Token ids of `text` as written after other text (no special tokens, no added prefix
    space); exact: the ids decode back to `text`, else PSAEError."""
    if not text:
        return []
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    if _decode(tokenizer, ids) == text:
        return ids
    # SentencePiece tokenizers add a word-start marker to a fresh encode: encode after an
    # anchor and drop the anchor's tokens.
    anchor = list(tokenizer.encode("\n", add_special_tokens=False))
    both = list(tokenizer.encode("\n" + text, add_special_tokens=False))
    if both[: len(anchor)] == anchor and _decode(tokenizer, both[len(anchor):]) == text:
        return both[len(anchor):]
    raise PSAEError(f"text {text[:40]!r}: the tokenizer cannot encode it as a continuation "
                    "that decodes back to the same text")


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@dataclass(frozen=True)
class ScoringSequence:
    """Token ids of prompt + parts, and the index of the last token of each part."""

    ids: list[int]
    ends: list[int]


def build_sequence(tokenizer, prompt: str, parts: Sequence[str]) -> ScoringSequence:
    ids = list(tokenizer.encode(prompt, add_special_tokens=False))
    if not ids:
        raise PSAEError("expected_values: the chat prompt is empty")
    ends = []
    for part in parts:
        ids.extend(encode_continuation(tokenizer, part))
        ends.append(len(ids) - 1)
    return ScoringSequence(ids, ends)


@dataclass(frozen=True)
class ValueTokens:
    """The token sequences of the values and the tree of their proper prefixes."""

    values: list[int]
    sequences: list[tuple[int, ...]]
    nodes: list[tuple[int, ...]]
    """Proper prefixes of the multi-token sequences, parents before children."""

    @classmethod
    def of(cls, tokenizer, values: Sequence[int]) -> ValueTokens:
        values = [int(v) for v in values]
        if not values or len(set(values)) != len(values):
            raise PSAEError(f"values={values!r}: expected distinct integers, at least one")
        sequences = [tuple(encode_continuation(tokenizer, str(v))) for v in values]
        nodes = sorted({s[:j] for s in sequences for j in range(1, len(s))},
                       key=lambda p: (len(p), p))
        return cls(values, sequences, nodes)


def expected_from_logits(
    position_logits: torch.Tensor, node_logits: torch.Tensor, tokens: ValueTokens,
) -> torch.Tensor:
    """E[value] per position from next-token logits after each part ([P, V]) and after each
    (part, tree node) ([P, nodes, V])."""
    logp = torch.log_softmax(position_logits.float(), dim=-1)
    node_logp = torch.log_softmax(node_logits.float(), dim=-1) if tokens.nodes else None
    index = {node: j for j, node in enumerate(tokens.nodes)}
    columns = []
    for seq in tokens.sequences:
        lp = logp[:, seq[0]]
        for j in range(1, len(seq)):
            lp = lp + node_logp[:, index[seq[:j]], seq[j]]
        if seq in index:  # also a prefix of longer values: it must not continue into one
            continuing = sorted({s[len(seq)] for s in tokens.sequences
                                 if len(s) > len(seq) and s[: len(seq)] == seq})
            p_continue = node_logp[:, index[seq], continuing].exp().sum(-1)
            lp = lp + torch.log1p(-p_continue.clamp(max=1 - 1e-7))
        columns.append(lp)
    probs = torch.softmax(torch.stack(columns, dim=-1), dim=-1)
    weights = torch.tensor(tokens.values, dtype=probs.dtype, device=probs.device)
    return probs @ weights


def tree_inputs(seq: ScoringSequence, tokens: ValueTokens, dtype: torch.dtype):
    """input_ids [1, L], position_ids [1, L] and an additive 4-D mask [1, 1, L, L] for the
    sequence followed by one copy of the value-prefix tree per part end; also the indices
    of the tree tokens, [parts, nodes]."""
    base = len(seq.ids)
    ids, positions = list(seq.ids), list(range(base))
    extra = []  # (row index, attends-to-prefix end, ancestor rows)
    node_rows = []
    for end in seq.ends:
        rows: dict[tuple[int, ...], int] = {}
        for node in tokens.nodes:
            row = len(ids)
            ids.append(node[-1])
            positions.append(end + len(node))
            ancestors = [rows[node[:j]] for j in range(1, len(node))]
            extra.append((row, end, ancestors))
            rows[node] = row
        node_rows.append([rows[n] for n in tokens.nodes])
    length = len(ids)
    allowed = torch.zeros(length, length, dtype=torch.bool)
    allowed[:base, :base] = torch.ones(base, base, dtype=torch.bool).tril()
    for row, end, ancestors in extra:
        allowed[row, : end + 1] = True
        allowed[row, ancestors] = True
        allowed[row, row] = True
    mask = torch.zeros(length, length, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return (torch.tensor([ids]), torch.tensor([positions]), mask[None, None],
            torch.tensor(node_rows, dtype=torch.long).reshape(len(seq.ends), len(tokens.nodes)))


@torch.inference_mode()
def one_pass_expected_values(
    model, tokenizer, prompt: str, parts: Sequence[str], values: Sequence[int],
) -> list[float]:
    """E[value] after each part of `parts`, from one forward pass of `model`."""
    if not parts:
        return []
    seq = build_sequence(tokenizer, prompt, parts)
    tokens = ValueTokens.of(tokenizer, values)
    device = next(model.parameters()).device
    context = _context_length(model)
    if context is not None and len(seq.ids) + len(seq.ends) * len(tokens.nodes) > context:
        raise PSAEError(f"expected_values: {len(seq.ids)} tokens (+ the value tree) exceed "
                        f"the model's context of {context}")
    ends = torch.tensor(seq.ends, device=device)
    if not tokens.nodes:
        logits = _logits_at(model, ends, input_ids=torch.tensor([seq.ids], device=device))
        return expected_from_logits(logits, logits[:0], tokens).tolist()
    input_ids, positions, mask, node_rows = tree_inputs(seq, tokens, model.dtype)
    rows = torch.cat([ends, node_rows.to(device).flatten()])
    logits = _logits_at(model, rows, input_ids=input_ids.to(device),
                        position_ids=positions.to(device), attention_mask=mask.to(device))
    node_logits = logits[len(seq.ends):].view(*node_rows.shape, -1)
    return expected_from_logits(logits[: len(seq.ends)], node_logits, tokens).tolist()


def _logits_at(model, rows: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
    """Next-token logits [len(rows), V] at sequence positions `rows`. The unembedding runs on
    those rows only where the model takes `logits_to_keep` (a fifth of a small model's
    compute is its unembedding of every position)."""
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return model(**inputs, logits_to_keep=rows).logits[0]
    return model(**inputs).logits[0][rows]


def _context_length(model) -> int | None:
    config = getattr(model, "config", None)
    n = getattr(config, "max_position_embeddings", None) if config is not None else None
    return int(n) if isinstance(n, int) else None
