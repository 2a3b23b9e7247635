"""The first-letter task (Chanin et al.; SAEBench): in-context prompts
`"{word} has the first letter:"`, read at the word's last token.

The read position comes from tokenizing each prompt with character offsets and finding the
token that ends where the word ends — never a fixed offset from the end: the shipped offline
tokenizer splits " letter" into " let" + "ter", so SAEBench's offset of -2 would read " let".
Only words that are one token of the vocabulary, and stay one token inside the prompt, are used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.lm.hooks import activations
from progressive_sae.lm.model import LanguageModel

DEFAULT_TEMPLATE = "{word} has the first letter:"
WORD_MARKERS = ("Ġ", "▁")
"""How byte-level BPE (GPT-2) and SentencePiece (Llama, Gemma) write a leading space."""


@dataclass
class PromptConfig:
    """How first-letter prompts are built."""

    template: str = DEFAULT_TEMPLATE
    """The prompt, with `{word}` where the word goes (its last token is read)."""
    icl_examples: int = 2
    """Answered examples placed before the prompt (SAEBench uses up to 10; each costs ~9
    tokens of LM time per word)."""
    separator: str = "\n"
    """Text between the examples and the prompt."""
    min_letters: int = 2
    """Shortest word used."""
    words_per_letter: int | None = None
    """Use at most this many words per first letter (a seeded sample); None = no cap. A
    49k-token vocabulary holds ~31k words, 3,254 starting with s but 26 with x: a capped
    sample keeps the rare letters scoreable at a fraction of the LM time of a uniform one."""
    max_words: int | None = None
    """Use at most this many words (a seeded sample, after the per-letter cap); None = every
    single-token word."""
    batch_size: int = 64
    """Prompts per LM forward pass."""

    def __post_init__(self) -> None:
        if not isinstance(self.template, str) or self.template.count("{word}") != 1:
            raise PSAEError(f"template {self.template!r}: the word position cannot be found "
                            "(expected exactly one '{word}')")
        if self.icl_examples < 0:
            raise PSAEError(f"icl_examples={self.icl_examples}: expected an integer ≥ 0")
        for name in ("words_per_letter", "max_words"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise PSAEError(f"{name}={value!r}: expected a positive integer or null")


def vocabulary_words(tokenizer: object, min_letters: int = 2) -> list[str]:
    """Single-token words: vocabulary entries that are a leading space plus letters only,
    returned as text (" word"), in token-id order."""
    pattern = re.compile(rf"[A-Za-z]{{{min_letters},}}")
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    words = []
    for piece, _ in sorted(vocab.items(), key=lambda item: item[1]):
        if piece[:1] in WORD_MARKERS and pattern.fullmatch(piece[1:]):
            words.append(" " + piece[1:])
    return words


def capped_per_letter(words: list[str], cap: int, rng: np.random.Generator) -> list[str]:
    """At most `cap` words of each first letter (a seeded sample), in the input order."""
    by_letter: dict[str, list[int]] = {}
    for index, word in enumerate(words):
        by_letter.setdefault(word.strip()[0].lower(), []).append(index)
    kept = []
    for letter in sorted(by_letter):
        indices = by_letter[letter]
        kept += indices if len(indices) <= cap else list(rng.choice(indices, cap, replace=False))
    return [words[i] for i in sorted(kept)]


def answer(word: str) -> str:
    return " " + word.strip()[0].upper()


def build_prompt(word: str, examples: list[str], config: PromptConfig) -> tuple[str, int, int]:
    """The prompt text and the character span [start, end) of `word` inside it."""
    shots = [config.template.replace("{word}", e) + answer(e) for e in examples]
    head = "".join(s + config.separator for s in shots)
    before, _ = config.template.split("{word}")
    start = len(head) + len(before)
    return head + config.template.replace("{word}", word), start, start + len(word)


def read_position(tokenizer: object, text: str, start: int, end: int) -> int | None:
    """Index (in tokens, without BOS) of the single token that holds text[start:end]: it
    ends where the word ends and starts at or before its first letter; None if no such token."""
    try:
        encoded = tokenizer(text, add_special_tokens=False,  # type: ignore[operator]
                            return_offsets_mapping=True)
    except NotImplementedError:
        raise PSAEError("the tokenizer gives no character offsets: the word position needs a "
                        "fast (Rust) tokenizer") from None
    first_letter = start + (len(text[start:end]) - len(text[start:end].lstrip()))
    for index, (a, b) in enumerate(encoded["offset_mapping"]):
        if b == end:
            return index if a <= first_letter else None
        if b > end:
            return None
    return None


@dataclass(frozen=True)
class Prompts:
    """Tokenised prompts ready for the LM."""

    words: list[str]
    """The words used (one prompt each)."""
    ids: list[list[int]]
    """Token ids of each prompt, BOS first when the tokenizer has one."""
    positions: list[int]
    """Read position of each prompt (the word's token)."""
    skipped: int
    """Words dropped because the word did not stay one token in its prompt."""
    example: str
    """The first prompt's text."""


def build_prompts(tokenizer: object, config: PromptConfig, seed: int = 0) -> Prompts:
    """One prompt per single-token word, with seeded in-context examples."""
    words = vocabulary_words(tokenizer, config.min_letters)
    if len(words) < 2:
        raise PSAEError(f"the tokenizer has {len(words)} single-token words: expected a "
                        "vocabulary with words written with a leading space")
    rng = np.random.default_rng(seed)
    if config.words_per_letter is not None:
        words = capped_per_letter(words, config.words_per_letter, rng)
    if config.max_words is not None and config.max_words < len(words):
        words = [words[i] for i in sorted(rng.choice(len(words), config.max_words,
                                                     replace=False))]
    bos = getattr(tokenizer, "bos_token_id", None)
    kept, ids, positions, example = [], [], [], ""
    for word in words:
        others = rng.choice(len(words), min(config.icl_examples, len(words) - 1), replace=False)
        shots = [words[i] for i in others if words[i] != word]
        text, start, end = build_prompt(word, shots, config)
        position = read_position(tokenizer, text, start, end)
        if position is None:
            continue
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        offset = 0 if bos is None else 1
        kept.append(word)
        # A causal LM's state at the word ignores what follows it: the tail is never run.
        ids.append(([bos] if bos is not None else []) + list(tokens[:position + 1]))
        positions.append(position + offset)
        example = example or text
    if not kept:
        raise PSAEError(f"template {config.template!r}: the word position cannot be found "
                        "(no word stays one token that ends where the word ends)")
    return Prompts(kept, ids, positions, len(words) - len(kept), example)


@torch.no_grad()
def prompt_activations(lm: LanguageModel, hook: str, prompts: Prompts,
                       batch_size: int = 64) -> torch.Tensor:
    """Residual stream at each prompt's read position, [prompts, d] float32."""
    order = sorted(range(len(prompts.ids)), key=lambda i: len(prompts.ids[i]))
    out = []
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]  # similar lengths: little padding
        batch = [prompts.ids[i] for i in chosen]
        width = max(map(len, batch))
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, seq in enumerate(batch):  # right padding: causal attention never sees it
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        acts = activations(lm, ids, hook, attention_mask=mask)
        where = torch.tensor([prompts.positions[i] for i in chosen])
        out.append(acts[torch.arange(len(batch)), where.to(acts.device)].float().cpu())
    result = torch.empty(len(order), out[0].shape[1])
    result[torch.tensor(order)] = torch.cat(out)
    return result


def first_letter_dataset(lm: LanguageModel, hook: str, config: PromptConfig | None = None,
                         seed: int = 0) -> tuple[torch.Tensor, list[str], dict]:
    """(activations at the word, first letter of each word, details for the record)."""
    config = config or PromptConfig()
    if lm.tokenizer is None:
        raise PSAEError(f"model {lm.name!r} has no tokenizer: the first-letter task needs one")
    prompts = build_prompts(lm.tokenizer, config, seed)
    x = prompt_activations(lm, hook, prompts, config.batch_size)
    labels = [w.strip()[0].lower() for w in prompts.words]
    example = prompts.example
    tokens = lm.tokenizer(example, add_special_tokens=False)["input_ids"]  # type: ignore
    bos = [] if getattr(lm.tokenizer, "bos_token_id", None) is None else [lm.tokenizer.bos_token_id]
    pieces = lm.tokenizer.convert_ids_to_tokens(bos + list(tokens))  # type: ignore
    details = {
        "template": config.template, "icl_examples": config.icl_examples,
        "words": len(prompts.words), "words_skipped": prompts.skipped,
        "example_prompt": prompts.example, "example_tokens": pieces,
        "example_read_position": prompts.positions[0],
        "example_read_token": pieces[prompts.positions[0]],
    }
    return x, labels, details
