"""Hook points and splicing on tiny random GPT-2, GPT-NeoX, Llama and Gemma-2 models,
saved to disk and loaded back through `load_lm` (no network)."""

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from progressive_sae import PSAEError, SAEConfig, build_sae
from progressive_sae.lm import (
    LanguageModel,
    activations,
    find_blocks,
    load_lm,
    mean_ablation,
    sae_splice,
    spliced_cross_entropy,
    zero_ablation,
)

VOCAB, PAD, BOS, EOS = 100, 0, 1, 2
IDS = dict(vocab_size=VOCAB, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
B, T = 3, 10

ARCHS = {
    "gpt2": (
        lambda: GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=64, **IDS)),
        "transformer.h", lambda m: m.transformer.ln_f,
    ),
    "gpt_neox": (
        lambda: GPTNeoXForCausalLM(GPTNeoXConfig(
            hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, **IDS,
        )),
        "gpt_neox.layers", lambda m: m.gpt_neox.final_layer_norm,
    ),
    "llama": (
        lambda: LlamaForCausalLM(LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, **IDS,
        )),
        "model.layers", lambda m: m.model.norm,
    ),
    "gemma2": (
        # sliding_window < T so that the alternating sliding/global layers differ
        lambda: Gemma2ForCausalLM(Gemma2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=64, sliding_window=4,
            **IDS,
        )),
        "model.layers", lambda m: m.model.norm,
    ),
}


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": PAD, "<bos>": BOS, "<eos>": EOS, "<unk>": 3}
    vocab.update({f"w{i}": i for i in range(4, VOCAB)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>",
    )


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and lose a lot on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request, tmp_path_factory):
    """(LanguageModel loaded from disk, expected block path, final-norm getter)."""
    build, path, final_norm = ARCHS[request.param]
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(request.param)
    build().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return load_lm(folder), path, final_norm


def batch(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (B, T), generator=g)
    ids[:, 0] = BOS
    return ids


def manual_ce(logits: torch.Tensor, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Per-row summed CE of predictions made at positions start..T-2."""
    lg = logits[:, start:-1]
    return F.cross_entropy(
        lg.flatten(0, 1), ids[:, start + 1:].flatten(), reduction="none"
    ).view(lg.shape[:2]).sum(1)


def test_load_lm_finds_blocks_and_tokenizer(arch):
    lm, path, _ = arch
    assert lm.blocks_path == path
    assert lm.num_blocks == lm.model.config.num_hidden_layers
    assert lm.d_model == 32 and lm.vocab_size == VOCAB and lm.dtype == torch.float32
    assert not lm.model.training
    assert lm.tokenizer("w5 w6 w7")["input_ids"] == [5, 6, 7]


def test_hook_is_the_block_output_of_hidden_states(arch):
    lm, path, final_norm = arch
    ids, n = batch(), lm.num_blocks
    with torch.no_grad():
        hidden = lm.model(ids, output_hidden_states=True).hidden_states
    assert len(hidden) == n + 1
    for layer in range(n):
        acts = activations(lm, ids, f"layers.{layer}")
        assert acts.shape == (B, T, lm.d_model)
        if layer < n - 1:
            assert torch.equal(acts, hidden[layer + 1])
        else:  # transformers puts the final norm's output in the last entry
            assert not torch.equal(acts, hidden[-1])
            assert torch.equal(final_norm(lm.model)(acts), hidden[-1])
        for alias in (f"blocks.{layer}.hook_resid_post", f"{path}.{layer}"):
            assert torch.equal(activations(lm, ids, alias), acts)
    # untied, the last entry is the raw output of the last block, as the hook reports
    lm.model.config.tie_last_hidden_states = False
    try:
        with torch.no_grad():
            raw = lm.model(ids, output_hidden_states=True).hidden_states[-1]
    finally:
        del lm.model.config.tie_last_hidden_states
    assert torch.equal(activations(lm, ids, f"layers.{n - 1}"), raw)


def test_only_blocks_up_to_the_hook_run(arch):
    lm, _, final_norm = arch
    counts = {}

    def counter(key):
        def pre_hook(module, args):
            counts[key] = counts.get(key, 0) + 1
        return pre_hook

    modules = {i: block for i, block in enumerate(lm.blocks)}
    modules.update(norm=final_norm(lm.model), head=lm.model.get_output_embeddings())
    hooks_before = [len(block._forward_hooks) for block in lm.blocks]
    handles = [m.register_forward_pre_hook(counter(k)) for k, m in modules.items()]
    try:
        for layer in range(lm.num_blocks):
            counts.clear()
            activations(lm, batch(), f"layers.{layer}")
            assert counts == {i: 1 for i in range(layer + 1)}
        # the stop hook is gone: a full forward runs everything again
        counts.clear()
        with torch.no_grad():
            lm.model(batch())
        assert counts == {**{i: 1 for i in range(lm.num_blocks)}, "norm": 1, "head": 1}
    finally:
        for h in handles:
            h.remove()
    assert [len(block._forward_hooks) for block in lm.blocks] == hooks_before


@pytest.mark.parametrize("exclude_bos", [False, True])
def test_identity_splice_leaves_cross_entropy_unchanged(arch, exclude_bos):
    lm, _, _ = arch
    ids = batch()
    clean = spliced_cross_entropy(lm, ids, "layers.0", None, exclude_bos)
    for layer in range(lm.num_blocks):
        same = spliced_cross_entropy(lm, ids, f"layers.{layer}", lambda x: x.clone(), exclude_bos)
        assert same == clean
    if not exclude_bos:  # the clean CE is the model's own loss
        with torch.no_grad():
            loss = lm.model(ids, labels=ids).loss
        assert clean.count == B * (T - 1)
        assert clean.mean == pytest.approx(float(loss), rel=1e-6)


@pytest.mark.parametrize("exclude_bos", [False, True])
def test_zero_splice_equals_a_manual_zero_ablation(arch, exclude_bos):
    lm, _, _ = arch
    ids, start = batch(), int(exclude_bos)
    for layer in range(lm.num_blocks):
        def zero_hook(module, args, output):
            out = output.clone()
            out[:, start:] = 0  # with exclude_bos the BOS position keeps its activation
            return out

        handle = lm.blocks[layer].register_forward_hook(zero_hook)
        try:
            with torch.no_grad():
                logits = lm.model(ids).logits
        finally:
            handle.remove()
        expected = manual_ce(logits, ids, start)
        got = spliced_cross_entropy(lm, ids, f"layers.{layer}", zero_ablation, exclude_bos)
        assert got.count == B * (T - 1 - start)
        assert got.total == pytest.approx(float(expected.sum()), rel=1e-6)


def test_mean_ablation_changes_cross_entropy(arch):
    lm, _, _ = arch
    ids = batch()
    layer = "layers.1"
    mean = activations(lm, batch(seed=2), layer).mean((0, 1))
    clean = spliced_cross_entropy(lm, ids, layer, None, True)
    zero = spliced_cross_entropy(lm, ids, layer, zero_ablation, True)
    ablated = spliced_cross_entropy(lm, ids, layer, mean_ablation(mean), True)
    assert ablated.count == clean.count
    assert ablated.total != clean.total and ablated.total != zero.total
    assert spliced_cross_entropy(lm, ids, layer, mean_ablation(mean * 0), True) == zero


def test_exclude_bos_drops_one_prediction_per_sequence(arch):
    lm, _, _ = arch
    ids = batch()
    with torch.no_grad():
        per_row = manual_ce(lm.model(ids).logits, ids)
        bos_term = manual_ce(lm.model(ids[:, :2]).logits, ids[:, :2])  # causal: same prediction
    full = spliced_cross_entropy(lm, ids, "layers.0", None, exclude_bos=False)
    no_bos = spliced_cross_entropy(lm, ids, "layers.0", None, exclude_bos=True)
    assert full.count - no_bos.count == B
    assert full.total == pytest.approx(float(per_row.sum()), rel=1e-6)
    assert full.total - no_bos.total == pytest.approx(float(bos_term.sum()), rel=1e-5)
    assert no_bos.mean == pytest.approx(no_bos.total / (B * (T - 2)))


def test_sae_splice_reconstructs_every_position(arch):
    lm, _, _ = arch
    ids = batch()
    sae = build_sae(SAEConfig(d_in=lm.d_model, num_latents=64, k=8))
    sae.eval()
    got = spliced_cross_entropy(lm, ids, "layers.1", sae_splice(sae), True)
    by_hand = spliced_cross_entropy(
        lm, ids, "layers.1", lambda x: sae(x.reshape(-1, x.shape[-1])).reshape(x.shape), True
    )
    assert got == by_hand
    clean = spliced_cross_entropy(lm, ids, "layers.1", None, True)
    assert got.total != clean.total
    smaller = spliced_cross_entropy(lm, ids, "layers.1", sae_splice(sae, granularity=16), True)
    assert smaller.total != got.total


def test_replayed_passes_equal_full_passes_and_skip_the_early_blocks(arch):
    lm, _, _ = arch
    ids, sae = batch(seed=5), build_sae(SAEConfig(d_in=lm.d_model, num_latents=64, k=8))
    sae.eval()
    ran: list[int] = []
    hooks_before = [len(block._forward_hooks) for block in lm.blocks]
    handles = [block.register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
               for i, block in enumerate(lm.blocks)]
    try:
        for layer in range(lm.num_blocks):
            for replace in (None, zero_ablation, sae_splice(sae)):
                lm.block_cache.clear()
                ran.clear()
                full = spliced_cross_entropy(lm, ids, f"layers.{layer}", replace, True)
                assert ran == list(range(lm.num_blocks))
                ran.clear()
                hits = lm.block_cache.hits
                replayed = spliced_cross_entropy(lm, ids, f"layers.{layer}", replace, True)
                assert lm.block_cache.hits == hits + 1
                assert ran == list(range(layer + 1, lm.num_blocks))
                assert replayed == full  # bitwise: the later blocks see the same tensor
    finally:
        for h in handles:
            h.remove()
    # the real blocks are back, with no hook of ours left on them
    assert all(type(b).__name__ != "_Replay" for b in lm.blocks)
    assert [len(block._forward_hooks) for block in lm.blocks] == hooks_before
    # other tokens or another mask are a miss, never a wrong replay
    misses = lm.block_cache.misses
    other = batch(seed=6)
    assert spliced_cross_entropy(lm, other, "layers.0", None, True) == \
        spliced_cross_entropy(lm, other, "layers.0", None, True)
    spliced_cross_entropy(lm, ids, "layers.0", None, True, attention_mask=torch.ones_like(ids))
    assert lm.block_cache.misses == misses + 2


def test_block_cache_drops_the_least_recently_used_beyond_its_bytes():
    from progressive_sae.lm.replay import BlockOutputCache

    cache = BlockOutputCache(max_bytes=2 * 400)
    for key in "abc":
        cache.put((0, key), torch.zeros(100))  # 400 bytes each
    assert cache.get((0, "a")) is None and cache.get((0, "b")) is not None
    cache.put((0, "d"), torch.zeros(100))  # "c" is now the least recently used
    assert cache.get((0, "c")) is None and cache.get((0, "d")) is not None
    cache.put((0, "huge"), torch.zeros(1000))
    assert cache.get((0, "huge")) is None


def test_right_and_left_padding_match_unpadded_rows(arch):
    lm, _, _ = arch
    ids = batch()
    short = ids[1, : T - 3]
    for side in ("right", "left"):
        padded, mask = ids.clone(), torch.ones_like(ids)
        if side == "right":
            padded[1, T - 3:], mask[1, T - 3:] = PAD, 0
            padded[1, : T - 3] = short
            where = slice(0, T - 3)
        else:
            padded[1], mask[1, :3] = PAD, 0
            padded[1, 3:] = short
            where = slice(3, T)
        for exclude_bos in (False, True):
            got = spliced_cross_entropy(
                lm, padded, "layers.1", zero_ablation, exclude_bos, attention_mask=mask
            )
            alone = [
                spliced_cross_entropy(lm, row, "layers.1", zero_ablation, exclude_bos)
                for row in (ids[0], short, ids[2])
            ]
            assert got.count == sum(r.count for r in alone)
            assert got.total == pytest.approx(sum(r.total for r in alone), rel=1e-5)
        acts = activations(lm, padded, "layers.2", attention_mask=mask)
        torch.testing.assert_close(acts[1, where], activations(lm, short, "layers.2")[0])


def test_bf16_model_with_fp32_sae(tmp_path):
    torch.manual_seed(0)
    build, _, _ = ARCHS["llama"]
    build().save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    lm = load_lm(tmp_path, dtype="bf16")
    assert lm.dtype == torch.bfloat16
    assert activations(lm, batch(), "layers.0").dtype == torch.bfloat16
    sae = build_sae(SAEConfig(d_in=lm.d_model, num_latents=64, k=8))
    ce = spliced_cross_entropy(lm, batch(), "layers.0", sae_splice(sae), True)
    assert ce.count == B * (T - 2) and torch.isfinite(torch.tensor(ce.mean))


def test_bad_hooks_and_inputs_are_named(arch):
    lm, _, _ = arch
    n = lm.num_blocks
    for bad in ("resid.1", "layers.x", "layers", "blocks.1.hook_resid_pre"):
        with pytest.raises(PSAEError, match=f"hook '{bad}': expected 'layers.L'.*0..{n - 1}"):
            activations(lm, batch(), bad)
    with pytest.raises(PSAEError) as err:
        activations(lm, batch(), "layers.9")
    assert str(err.value) == f"layers.9: this model has {n} blocks (layers.0 … layers.{n - 1})"
    with pytest.raises(PSAEError, match="layers.-1: this model has"):
        spliced_cross_entropy(lm, batch(), "layers.-1", None, True)
    with pytest.raises(PSAEError, match=f"token id {VOCAB}: expected ids in 0..{VOCAB - 1}"):
        activations(lm, torch.full((1, 4), VOCAB), "layers.0")
    with pytest.raises(PSAEError, match="replacement gave"):
        spliced_cross_entropy(lm, batch(), "layers.0", lambda x: x[:, 1:], False)
    with pytest.raises(PSAEError, match="no next-token predictions"):
        spliced_cross_entropy(lm, batch()[:, :2], "layers.0", None, exclude_bos=True)


def test_missing_or_unknown_models_give_one_line(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-model"
    with pytest.raises(PSAEError, match=f"model path '{missing}' does not exist"):
        load_lm(missing)
    with pytest.raises(PSAEError, match="no config.json"):
        load_lm(tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PSAEError, match="model 'no-such-org/no-such-model': cannot load it"):
        load_lm("no-such-org/no-such-model")
    with pytest.raises(PSAEError, match="dtype='fp8'"):
        load_lm(tmp_path, dtype="fp8")


def test_blocks_found_anywhere_by_the_layer_count():
    class Config:
        num_hidden_layers = 3

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = Config()
            self.backbone = nn.Module()
            self.backbone.stack = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
            self.heads = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])

    path, blocks = find_blocks(Odd())
    assert path == "backbone.stack" and len(blocks) == 3
    Config.num_hidden_layers = 5
    with pytest.raises(PSAEError, match="found no list of decoder blocks with 5 entries"):
        LanguageModel(Odd(), None, "odd")
