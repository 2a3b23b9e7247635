"""Expected digit values from one forward pass, against a slow per-position reference."""

from __future__ import annotations

import pytest
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.interp.clients.one_pass import (
    ValueTokens,
    build_sequence,
    encode_continuation,
    expected_from_logits,
)

MESSAGES = (("system", "Rate each token 0 to 10."),
            ("user", "Plural nouns. Text: The cats sat on mats."))
# Bills et al.'s layout; "cat" + "s\t" would be one token [cats] in a joint tokenization.
PARTS = ["The\t", "unknown\ncat", "s\t", "unknown\n sat\t", ""]
VALUES = list(range(11))


def reference(model, tokenizer, seq, tokens):
    """E[value] per part from separate forward passes: P(sequence of value tokens) built
    token by token, a value that prefixes a longer one times P(not continuing)."""
    out = []
    memo: dict[tuple[int, ...], torch.Tensor] = {}
    with torch.inference_mode():
        def next_logp(ids):
            if tuple(ids) not in memo:
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
                memo[tuple(ids)] = torch.log_softmax(logits, -1)
            return memo[tuple(ids)]

        for end in seq.ends:
            prefix = seq.ids[: end + 1]
            probs = []
            for value_seq in tokens.sequences:
                p = 1.0
                for j, token in enumerate(value_seq):
                    p *= next_logp(prefix + list(value_seq[:j]))[token].exp().item()
                longer = {s[len(value_seq)] for s in tokens.sequences
                          if len(s) > len(value_seq) and s[: len(value_seq)] == value_seq}
                if longer:
                    after = next_logp(prefix + list(value_seq)).exp()
                    p *= 1 - sum(after[t].item() for t in longer)
                probs.append(p)
            total = sum(probs)
            out.append(sum(v * p / total for v, p in zip(tokens.values, probs)))
    return out


def test_part_ends_are_token_boundaries_across_bpe_merges(smollm2):
    tok = smollm2.tokenizer
    assert tok.encode("cats", add_special_tokens=False) != (
        tok.encode("cat", add_special_tokens=False) + tok.encode("s", add_special_tokens=False))
    prompt = smollm2.prompt(MESSAGES)
    seq = build_sequence(tok, prompt, PARTS)
    for i, end in enumerate(seq.ends):
        text = tok.decode(seq.ids[: end + 1], clean_up_tokenization_spaces=False)
        assert text == prompt + "".join(PARTS[: i + 1])
    assert seq.ends[-1] == seq.ends[-2]  # an empty part reads the same position


def test_ten_is_two_tokens_and_read_through_the_tree(smollm2):
    tokens = ValueTokens.of(smollm2.tokenizer, VALUES)
    one = tuple(encode_continuation(smollm2.tokenizer, "1"))
    assert tokens.sequences[10] == one + tuple(encode_continuation(smollm2.tokenizer, "0"))
    assert tokens.nodes == [one]


@pytest.mark.parametrize("dtype", ["default", "fp32"])
def test_one_forward_pass_agrees_with_the_reference(smollm2, smollm2_fp32, dtype):
    """Exactly (1e-4) in fp32; within bf16's rounding (the reference runs other lengths)
    in the dtype users get here."""
    smollm2 = smollm2_fp32 if dtype == "fp32" else smollm2
    exact = smollm2.model.dtype == torch.float32
    calls = []
    hook = smollm2.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        values = smollm2.expected_values(MESSAGES, PARTS, VALUES)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert len(values) == len(PARTS)
    assert all(0.0 <= v <= 10.0 for v in values)
    seq = build_sequence(smollm2.tokenizer, smollm2.prompt(MESSAGES), PARTS)
    expected = reference(smollm2.model, smollm2.tokenizer, seq,
                         ValueTokens.of(smollm2.tokenizer, VALUES))
    assert values == pytest.approx(expected, abs=1e-4 if exact else 0.25)


def test_single_token_values_use_a_plain_pass(smollm2):
    parts = PARTS[:3]
    values = smollm2.expected_values(MESSAGES, parts, [0, 1])
    seq = build_sequence(smollm2.tokenizer, smollm2.prompt(MESSAGES), parts)
    expected = reference(smollm2.model, smollm2.tokenizer, seq,
                         ValueTokens.of(smollm2.tokenizer, [0, 1]))
    assert values == pytest.approx(expected, abs=1e-4)
    assert all(0.0 <= v <= 1.0 for v in values)


def test_expectation_over_a_token_tree_by_hand():
    # vocabulary: 0 → "0", 1 → "1", 2 → anything else; values 0, 1 and 10 = "1","0"
    tokens = ValueTokens(values=[0, 1, 10], sequences=[(0,), (1,), (1, 0)], nodes=[(1,)])
    position = torch.log(torch.tensor([[0.2, 0.6, 0.2]]))
    after_one = torch.log(torch.tensor([[[0.5, 0.1, 0.4]]]))  # P("0" | "1") = 0.5
    # P(0) ∝ 0.2, P(1) ∝ 0.6·0.5, P(10) ∝ 0.6·0.5 → (0 + 0.3 + 3) / 0.8
    got = expected_from_logits(position, after_one, tokens)
    assert got.tolist() == pytest.approx([3.3 / 0.8])


def test_bad_values_are_one_line_errors(smollm2):
    with pytest.raises(PSAEError, match="distinct"):
        smollm2.expected_values(MESSAGES, PARTS[:1], [1, 1])
    assert smollm2.expected_values(MESSAGES, [], VALUES) == []
