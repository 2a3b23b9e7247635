"""Automated interpretability per granularity (SPEC §4.6).

records (activating windows per latent) → sampling (train/test/non-activating examples) →
explainer (an explanation per latent) → scorers (simulation, fuzzing, detection), with LLM
clients behind one small interface (`clients/`) and a self-contained feature browser.
An LLM client knows nothing of SAEs; a scorer knows nothing of HTTP.
"""
