"""A small byte-level BPE trained on the offline corpus, saved as a plain HF tokenizer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

SPECIAL_TOKEN = "<|endoftext|>"
"""The one special token: BOS, EOS, padding and document separator (GPT-2's convention)."""


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096):
    """Train a byte-level BPE (GPT-2 style, id 0 = SPECIAL_TOKEN) and wrap it for transformers.

    The result encodes any string (no unknown token), adds no special tokens by itself, and
    saves with ``save_pretrained`` so that ``AutoTokenizer.from_pretrained(folder)`` loads it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257 + 1:
        raise ValueError(f"vocab_size must be at least 258 (256 bytes + special), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[SPECIAL_TOKEN], min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL_TOKEN, eos_token=SPECIAL_TOKEN,
        pad_token=SPECIAL_TOKEN, unk_token=None, model_max_length=1024,
        clean_up_tokenization_spaces=False,
    )


def encode_documents(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens."""
    if not texts:
        return []
    # The backend directly: no "longer than model_max_length" warnings for whole documents.
    encs = tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [e.ids for e in encs]


def save_tokenizer(tokenizer, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))


def load_tokenizer(folder: Path):
    """Load a saved tokenizer folder offline (plain ``AutoTokenizer``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
