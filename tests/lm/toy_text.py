"""A tiny word-level tokenizer for text and extraction tests (no network)."""

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<unk>", "<bos>", "<eos>", "<pad>"]
WORDS = [f"w{i}" for i in range(40)]
VOCAB = {token: i for i, token in enumerate(SPECIALS + WORDS)}
UNK, BOS, EOS, PAD = range(4)


def toy_tokenizer(bos: bool = True, eos: bool = True) -> PreTrainedTokenizerFast:
    """Word-level: "w7" → id 11 (4 specials first), anything else → <unk>."""
    core = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = {"unk_token": "<unk>", "pad_token": "<pad>"}
    if bos:
        specials["bos_token"] = "<bos>"
    if eos:
        specials["eos_token"] = "<eos>"
    return PreTrainedTokenizerFast(tokenizer_object=core, **specials)


def ids(text: str) -> list[int]:
    """The toy tokenizer's ids of a text, computed by hand."""
    return [VOCAB.get(word, UNK) for word in text.split()]


def doc(start: int, length: int) -> str:
    """A document of `length` words w{start}, w{start+1}, … (mod 40)."""
    return " ".join(f"w{(start + i) % 40}" for i in range(length))
