"""A Hugging Face causal chat model run in-process (CPU or CUDA).

Chat is greedy generation (temperature 0; a positive temperature samples by the Gumbel-max
trick under a seed drawn from the request, so answers repeat and the global RNG is untouched),
batched with left padding over requests of similar length. A request with a raw `completion`
prompt skips the chat template and stops at the end of its line. `expected_values` is the
one-pass reading of digit probabilities described in `one_pass`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from progressive_sae.errors import PSAEError, first_line
from progressive_sae.interp.clients.base import ChatAnswer, ChatRequest, Message
from progressive_sae.interp.clients.one_pass import one_pass_expected_values
from progressive_sae.interp.clients.stats import ClientStats
from progressive_sae.lm.model import resolve_dtype
from progressive_sae.lm.transformers_quiet import quiet_transformers

TINY_PARAMETERS = 1_000_000_000
"""Below this many parameters a model is `tiny`: prompt 'auto' gives it completion-style
explanation prompts (SmolLM2-135M named 0 of 4 planted tokens from the chat prompt)."""


class HFChatModel:
    """LLMClient and TokenScorer over a loaded transformers model and its chat template."""

    tiny: bool
    """Fewer than TINY_PARAMETERS parameters."""

    def __init__(self, model, tokenizer, model_id: str, batch_size: int = 8) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise PSAEError(f"model {model_id!r} has no chat template; expected a chat "
                            "(instruct) model")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.batch_size = batch_size
        self.stats = ClientStats()
        self.tiny = sum(p.numel() for p in model.parameters()) < TINY_PARAMETERS
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # generation continues every row from its last token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return f"HFChatModel({self.model_id!r}, device={str(self.device)!r})"

    def prompt(self, messages: Sequence[Message]) -> str:
        """The chat template applied to `messages`, ending where the assistant answers."""
        chat = [{"role": role, "content": content} for role, content in messages]
        return self.tokenizer.apply_chat_template(chat, add_generation_prompt=True,
                                                  tokenize=False)

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatAnswer]:
        answers: list[ChatAnswer | None] = [None] * len(requests)
        prompts = [self._ids(r) for r in requests]
        # Rows of one kind (temperature, completion or chat) and similar length share a
        # batch: little padding, and only completions stop at the end of their line.
        kind = [(r.temperature, r.completion is not None) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (kind[i], len(prompts[i])))
        context = getattr(self.model.config, "max_position_embeddings", None)
        runnable = []
        for i in order:
            needed = len(prompts[i]) + requests[i].max_tokens
            if isinstance(context, int) and needed > context:
                answers[i] = ChatAnswer(None, error=f"prompt of {len(prompts[i])} tokens + "
                                        f"max_tokens {requests[i].max_tokens} exceed the "
                                        f"model's context of {context}")
            else:
                runnable.append(i)
        batches = []
        for _, group in itertools.groupby(runnable, key=lambda i: kind[i]):
            group = list(group)
            batches += [group[j: j + self.batch_size]
                        for j in range(0, len(group), self.batch_size)]
        for batch in batches:
            try:
                texts = self._generate([prompts[i] for i in batch],
                                       [requests[i] for i in batch])
                for i, text in zip(batch, texts):
                    answers[i] = ChatAnswer(text)
            except (RuntimeError, ValueError, IndexError) as e:
                for i in batch:
                    answers[i] = ChatAnswer(None, error=f"generation failed: {first_line(e)}")
        self.stats.calls += len(runnable)
        self.stats.failures += sum(1 for a in answers if a is not None and not a.ok)
        return [a for a in answers if a is not None]

    def _ids(self, request: ChatRequest) -> list[int]:
        """Prompt token ids: the raw completion text (with the tokenizer's own BOS, if it
        adds one), or the chat template applied to the messages."""
        if request.completion is not None:
            return list(self.tokenizer.encode(request.completion))
        return list(self.tokenizer.encode(self.prompt(request.messages),
                                          add_special_tokens=False))

    @torch.inference_mode()
    def _generate(self, prompts: list[list[int]], requests: list[ChatRequest]) -> list[str]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        temperature = requests[0].temperature
        settings = dict(max_new_tokens=max(r.max_tokens for r in requests), pad_token_id=pad,
                        eos_token_id=self.tokenizer.eos_token_id,
                        do_sample=False, temperature=None, top_p=None, top_k=None)
        completion = requests[0].completion is not None
        if completion:  # its answer is one line: no tokens spent on the lines after it
            settings.update(stop_strings=["\n"], tokenizer=self.tokenizer)
        if temperature > 0:
            from transformers import LogitsProcessorList

            generator = torch.Generator().manual_seed(_seed_of(prompts))
            settings["logits_processor"] = LogitsProcessorList(
                [GumbelSampling(temperature, generator)])
        device = self.device
        out = self.model.generate(input_ids=input_ids.to(device),
                                  attention_mask=attention.to(device), **settings)
        texts = []
        for row, request in zip(out[:, width:].tolist(), requests):
            row = row[: request.max_tokens]  # greedy: a shorter budget is a prefix
            if self.tokenizer.eos_token_id in row:
                row = row[: row.index(self.tokenizer.eos_token_id)]
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            texts.append((text.split("\n", 1)[0] if completion else text).strip())
        return texts

    def expected_values(
        self, messages: Sequence[Message], assistant_parts: Sequence[str],
        values: Sequence[int],
    ) -> list[float]:
        """See TokenScorer. Parts should end where a value is written as its own token (after
        a tab or a newline, not after a space that BPE would merge with the digit)."""
        self.stats.calls += 1
        return one_pass_expected_values(self.model, self.tokenizer, self.prompt(messages),
                                        assistant_parts, values)


class GumbelSampling:
    """Sampling at `temperature` as greedy decoding of noisy scores: argmax(s/T + g), with g
    standard Gumbel noise, is a draw from softmax(s/T) (the Gumbel-max trick). The noise comes
    from `generator`, so sampling repeats under a seed and never touches the global RNG,
    which transformers' own sampling draws from."""

    def __init__(self, temperature: float, generator: torch.Generator) -> None:
        self.temperature = temperature
        self.generator = generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        uniform = torch.rand(scores.shape, generator=self.generator, dtype=torch.float64)
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-300)))
        return scores.float() / self.temperature + gumbel.float().to(scores.device)


def _seed_of(prompts: list[list[int]]) -> int:
    digest = hashlib.sha256(repr(prompts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def load_hf_chat_model(name: str, device: str = "cpu", dtype: str | None = None,
                       batch_size: int = 8) -> HFChatModel:
    """A local model folder, or a hub name already in the local HF cache (never downloads)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_device = _device(device)
    path = Path(name).expanduser()
    if (name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1) \
            and not path.is_dir():
        raise PSAEError(f"hf:{name}: no such model folder")
    source = str(path) if path.is_dir() else name
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=resolve_dtype(dtype, torch_device), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise PSAEError(f"hf:{name}: cannot load it from a local folder or the local HF "
                        f"cache ({first_line(e)})") from e
    model.to(torch_device)
    return HFChatModel(model, tokenizer, model_id=f"hf:{name}", batch_size=batch_size)


def _device(device: str) -> torch.device:
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise PSAEError(f"device={device!r}: expected 'cpu', 'cuda', 'cuda:0', …") from e
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise PSAEError(f"device={device!r}: CUDA is not available on this machine")
    return torch_device
