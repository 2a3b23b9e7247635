"""Seed 002's evaluations (SPEC §4.7), one folder each: config, computation, result record.

Every evaluation takes SAEs and activations (and, for LM tasks, `progressive_sae.lm`), scores
the full dictionary and the first G latents (`common.GranularityView`), and reports
bootstrap confidence intervals. None of them trains an SAE; probes are their own.
"""
