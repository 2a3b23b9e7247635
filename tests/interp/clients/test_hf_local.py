"""The in-process chat model: greedy, batched with left padding, failures as answers."""

from __future__ import annotations

import torch

from progressive_sae.interp.clients import ChatRequest, LLMClient, TokenScorer, make_client
from progressive_sae.lm.smollm2 import converted_folder, gguf_file

REQUESTS = [  # prompts of different lengths: the batch is left-padded
    ChatRequest((("system", "Be brief."), ("user", "What colour is the sky on a clear day?")),
                max_tokens=4),
    ChatRequest((("user", "Hi"),), max_tokens=3),
]


def test_batched_answers_equal_one_at_a_time(smollm2):
    smollm2.batch_size = 8
    batched = smollm2.chat(REQUESTS)
    smollm2.batch_size = 1
    try:
        single = smollm2.chat(REQUESTS)
    finally:
        smollm2.batch_size = 8
    assert all(a.ok for a in batched)
    assert [a.text for a in batched] == [a.text for a in single]
    for request, answer in zip(REQUESTS, batched):
        assert answer.text
        assert len(smollm2.tokenizer.encode(answer.text, add_special_tokens=False)) \
            <= request.max_tokens + 1  # decoding may split one token's text in two


def test_sampling_repeats_and_leaves_the_global_rng_alone(smollm2):
    request = ChatRequest((("user", "Write a word."),), max_tokens=4, temperature=1.0)
    state = torch.get_rng_state()
    first = smollm2.chat([request])[0].text
    assert torch.equal(torch.get_rng_state(), state)
    assert smollm2.chat([request])[0].text == first


def test_a_prompt_beyond_the_context_is_a_failed_answer(smollm2):
    failures = smollm2.stats.failures
    too_long = ChatRequest((("user", "word " * 9000),), max_tokens=4)
    answers = smollm2.chat([too_long, REQUESTS[1]])
    assert not answers[0].ok and "context" in answers[0].error
    assert answers[1].ok
    assert smollm2.stats.failures == failures + 1


def test_hf_path_loads_a_local_folder(smollm2):
    folder = converted_folder(gguf_file())  # written by the offline default's first load
    client = make_client(f"hf:{folder}")
    assert isinstance(client, LLMClient) and isinstance(client, TokenScorer)
    assert client.model_id == f"hf:{folder}"
    assert client.chat(REQUESTS[1:])[0].text == smollm2.chat(REQUESTS[1:])[0].text


def test_gumbel_sampling_draws_from_the_tempered_softmax():
    from progressive_sae.interp.clients.hf_local import GumbelSampling

    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    temperature = 0.7
    sampler = GumbelSampling(temperature, torch.Generator().manual_seed(0))
    draws = torch.cat([sampler(None, scores).argmax(1) for _ in range(20000)])
    frequencies = torch.bincount(draws, minlength=4).double() / draws.numel()
    expected = torch.softmax(scores[0].double() / temperature, 0)
    assert torch.allclose(frequencies, expected, atol=0.015)
    first, second = (GumbelSampling(temperature, torch.Generator().manual_seed(1))
                     for _ in range(2))
    assert torch.equal(first(None, scores), second(None, scores))  # the seed decides
