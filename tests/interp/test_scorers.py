"""Scorers with fake clients: oracle, constant, always-correct, garbage; and the baseline."""

import json

import numpy as np
import pytest

from progressive_sae.interp.baseline import BaselineInterpreter
from progressive_sae.interp.explainer import LLMInterpreter
from progressive_sae.interp.prompts import parse_simulation, parse_verdict, simulation_request
from progressive_sae.interp.scorers import balanced_accuracy, correlation
from progressive_sae.interp.scoring import LatentResult, score_latents
from tests.interp.fakes import Constant, Garbage, OnePassOracle, Oracle, make_item, text

METHODS = ("simulation", "fuzzing", "detection")


def run(client_or_interpreter, items):
    interpreter = (client_or_interpreter if hasattr(client_or_interpreter, "judge")
                   else LLMInterpreter(client_or_interpreter, text))
    return score_latents("sae", items, interpreter, METHODS, seed=1)


@pytest.mark.parametrize("oracle", [Oracle, OnePassOracle])
def test_a_perfect_simulator_and_an_oracle_judge_score_one(oracle):
    items = [make_item(latent=j) for j in range(3)]
    client = oracle(items)
    results = run(client, items)
    for r in results:
        assert r.explanation == "fires on t1 and t2"
        assert r.value("simulation") == pytest.approx(1.0)
        assert r.value("fuzzing") == 1.0 and r.value("detection") == 1.0
        assert r.llm_calls == (1 + 8 + 1 + 1 if oracle is OnePassOracle else 1 + 8 + 8 + 8)
        assert all(not s.failures and s.answered == 8 for s in r.scores.values())
    if oracle is OnePassOracle:  # a pass per simulated window, one per latent and verdict
        assert client.passes == 3 * (8 + 2) and client.calls == 3


def test_a_constant_simulator_is_undefined_and_always_correct_is_half():
    items = [make_item(latent=j) for j in range(2)]
    for r in run(Constant(items), items):
        sim = r.scores["simulation"]
        assert sim.value is None and "constant prediction" in sim.reason
        assert r.value("fuzzing") == 0.5 and r.value("detection") == 0.5
        line = json.loads(json.dumps(r.to_dict(), allow_nan=False))
        assert line["scores"]["simulation"]["value"] is None


def test_garbage_answers_are_recorded_failures_never_zero():
    items = [make_item(latent=j) for j in range(2)]
    results = run(Garbage(items), items)
    for r in results:
        for method, score in r.scores.items():
            assert score.value is None and score.answered == 0, method
            assert len(score.failures) == 8 and "failed" in score.reason
            texts = {f.text for f in score.failures}
            errors = {f.error for f in score.failures}
            assert "I think maybe {not json" in texts
            assert "HTTP 500 after 3 retries" in errors
            assert sorted(f.window for f in score.failures) == list(range(8))
        again = LatentResult.from_dict(json.loads(json.dumps(r.to_dict())))
        assert again == r


def test_a_failed_explanation_leaves_every_method_undefined():
    class NoExplanation(Oracle):
        def answer(self, request):
            return "  \n" if "Excerpt 1" in request.messages[-1][1] else super().answer(
                request)

    items = [make_item()]
    (r,) = run(NoExplanation(items), items)
    assert r.explanation is None and r.failures[0].error == "empty explanation"
    assert all(s.value is None and "no explanation" in s.reason for s in r.scores.values())


def test_the_baseline_reads_its_table_and_needs_no_llm():
    items = [make_item(latent=j) for j in range(3)]
    results = run(BaselineInterpreter(text), items)
    for r in results:
        assert r.interpreter == "baseline" and r.llm_calls == 0
        assert "' t2'" in r.explanation and "baseline" in r.explanation
        # The latent is a pure token detector: its table simulates it exactly.
        assert r.value("simulation") == pytest.approx(1.0)
        assert r.value("fuzzing") == 1.0 and r.value("detection") == 1.0


def test_score_helpers():
    assert correlation(np.arange(5), np.arange(5) * 2 + 1)[0] == pytest.approx(1.0)
    assert correlation(np.arange(5), np.full(5, 2.0))[0] is None
    assert balanced_accuracy([True, True, False, False], [True, True, True, True]) == (0.5,
                                                                                       None)
    assert balanced_accuracy([True, False], [True, False]) == (1.0, None)
    assert balanced_accuracy([True, True], [True, True])[0] is None
    assert parse_simulation('```json\n{"activations": [["a", 1], ["b", "7"]]}\n```', 2) == [
        1.0, 7.0]
    assert parse_simulation('[{"token": "a", "activation": 12}]', 1) == [10.0]
    assert parse_simulation('{"activations": [["a", 1]]}', 2) is None
    assert parse_simulation("no json here", 1) is None
    assert parse_simulation('{"activations": [0, 3, 10]}', 3) == [0.0, 3.0, 10.0]


def test_a_simulation_request_asks_for_values_only():
    """A server without logprobs generates ~2 tokens per window token, not a pair each."""
    request = simulation_request("fires on t1", [1, 2, 3], text)
    assert request.json_answer and request.max_tokens == 3 * 3 + 24
    assert "3 integers, one per token" in request.messages[-1][1]
    assert parse_verdict("Answer: 1") is True and parse_verdict("no.") is False
    assert parse_verdict("maybe") is None
