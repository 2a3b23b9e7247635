"""Token ids → the strings a person reads in the browser.

One token decoded alone can be a fragment: a byte-level BPE token may hold part of a UTF-8
character (decoding it alone gives U+FFFD), and a SentencePiece token loses its leading
space when decoded alone. Both are repaired from the token's vocabulary string. Whitespace
stays readable: a newline shows as ↵, a tab as ⇥, other control characters as \\xNN; spaces
stay spaces (the page shows them as ␣ where a token stands alone).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

VISIBLE = {"\n": "↵", "\r": "␍", "\t": "⇥"}


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE map, inverted: printable stand-in character → byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def visible(text: str) -> str:
    """Newlines, tabs and other control characters as visible symbols."""
    out = []
    for ch in text:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def token_text(tokenizer: Any, token_id: int) -> str:
    """How one token reads on its own (before `visible`)."""
    text = tokenizer.decode([token_id], skip_special_tokens=False,
                            clean_up_tokenization_spaces=False)
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if not isinstance(piece, str):
        return text
    if "\ufffd" in text:
        alphabet = byte_level_alphabet()
        if piece and all(ch in alphabet for ch in piece):
            raw = bytes(alphabet[ch] for ch in piece)
            return raw.decode("utf-8", errors="backslashreplace")
    if piece.startswith("▁") and not text.startswith(" "):
        return " " + text
    return text


def token_strings(tokenizer: Any | None, ids: Iterable[int]) -> dict[str, str]:
    """{str(id): display text} for the given ids; '⟨id⟩' for all of them without a tokenizer
    (the page writes that itself, so they are left out)."""
    if tokenizer is None:
        return {}
    return {str(int(i)): visible(token_text(tokenizer, int(i))) for i in sorted(set(ids))}
