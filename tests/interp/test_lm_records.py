"""Records straight from the shipped offline LM and a text file."""

import numpy as np

from progressive_sae import SAEConfig, build_sae
from progressive_sae.interp.lm_records import collect_records_from_lm
from progressive_sae.interp.prompts import load_tokenizer
from progressive_sae.lm import load_lm
from progressive_sae.lm.text import TextConfig
from tests.helpers import one_line_error
from tests.interp.test_records import small_cfg


def test_records_from_an_lm_and_text(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 40)
    lm = load_lm("offline-default")
    sae = build_sae(SAEConfig(d_in=256, num_latents=32, k=4))
    cfg = TextConfig(source=str(text), ctx=32)
    rec = collect_records_from_lm(sae, lm, "layers.2", cfg, tmp_path / "work", 300,
                                  small_cfg())
    assert rec.tokens_seen == 300 and (tmp_path / "work" / "records" / "records.json").is_file()
    assert rec.meta["hook"] == "layers.2"
    tokenizer = load_tokenizer(rec.meta)
    j = int(rec.live()[0])
    window = rec.windows(j, "top")[0]
    assert window.max_act == rec.max_activation[j]
    decoded = tokenizer.decode(window.tokens.tolist())
    assert decoded.strip() and decoded.strip() in text.read_text()
    assert np.all(window.tokens >= 0)
    narrow = build_sae(SAEConfig(d_in=64, num_latents=32, k=4))
    one_line_error(lambda: collect_records_from_lm(narrow, lm, "layers.2", cfg,
                                                   tmp_path / "w2", 300), "d_in=64", "256")
