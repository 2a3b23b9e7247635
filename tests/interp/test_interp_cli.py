"""`psae interp`: a baseline run end to end, and bad input as one line with exit code 2."""

import json

import pytest

from progressive_sae.cli import main
from progressive_sae.sae import save_sae
from tests.interp.helpers import token_cache, token_sae

CONFIG = """
records: {window: 8, reservoir: 12, top_windows: 4, nonactivating_pool: 40, batch_rows: 256}
sampling: {quantiles: 2, latents_per_quantile: 2, train_examples: 6, test_examples: 3}
methods: [detection]
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    _, _, embed = token_cache(root / "cache", sequences=40)
    token_cache(root / "no_ids", sequences=4, tokens=False)
    save_sae(token_sae(embed=embed, granularities=[12, 24]), root / "matryoshka")
    save_sae(token_sae(embed=embed, seed=1), root / "topk")
    save_sae(token_sae(d=5), root / "narrow")
    (root / "small.yaml").write_text(CONFIG)
    return root


def test_psae_interp_with_the_baseline(ws, capsys):
    code = main(["interp", str(ws / "matryoshka"), str(ws / "topk"), "--data", str(ws / "cache"),
                 "--llm", "baseline", "--config", str(ws / "small.yaml"), "--quiet",
                 "--latents-per-quantile", "1", "--out", str(ws / "run")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "baseline" in out and "[12, 24)" in out and "random" in out
    summary = json.loads((ws / "run" / "summary.json").read_text())
    assert set(summary["saes"]) == {"matryoshka", "topk", "random"}
    assert summary["config"]["sampling"]["latents_per_quantile"] == 1
    assert summary["methods"] == ["detection"]
    assert (ws / "run" / "scores" / "topk.baseline.jsonl").is_file()


@pytest.mark.parametrize("argv,words", [
    (["narrow"], ["d_in=5", "d=6"]),
    (["topk", "--data", "no_ids"], ["no token ids"]),
    (["topk", "--llm", "gpt-17"], ["unknown LLM spec 'gpt-17'"]),
    (["topk", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"],
     ["http://127.0.0.1:9/v1"]),
    (["topk", "--methods", "vibes"], ["methods"]),
])
def test_psae_interp_bad_input_is_one_line(ws, capsys, argv, words):
    args = ["interp", str(ws / argv[0]), "--data", str(ws / "cache"), *argv[1:],
            "--out", str(ws / "bad")]
    if "--data" in argv:
        args = ["interp", str(ws / argv[0]), *argv[1:2], str(ws / argv[2]), *argv[3:],
                "--out", str(ws / "bad")]
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("psae: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    assert not (ws / "bad").exists()
