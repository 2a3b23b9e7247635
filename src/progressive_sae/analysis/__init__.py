"""Analyses of trained SAEs (SPEC §4): each a function returning a typed result, plus a plot."""

from progressive_sae.analysis.activation_mass import (
    ActivationMassCurve,
    activation_mass_curve,
    plot_activation_mass,
)
from progressive_sae.analysis.frontier import (
    FrontierPoint,
    plot_frontier,
    progressive_frontier,
    sparsity_frontier,
)
from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.analysis.power_law import (
    DEFAULT_CENTRAL,
    DictionaryPowerLaw,
    PowerLawFit,
    StatisticPowerLaw,
    decoder_eigenvalues,
    dictionary_power_law,
    fit_power_law,
    plot_power_law,
)
from progressive_sae.analysis.scaling_law import (
    ScalingLawFit,
    ScalingPoint,
    fit_scaling_law,
    plot_scaling_law,
)
from progressive_sae.analysis.splitting import (
    FeatureSplitting,
    decoder_similarity,
    plot_decoder_similarity,
    plot_split_counts,
    split_counts,
)

__all__ = [
    "ActivationMassCurve",
    "FrontierPoint",
    "activation_mass_curve",
    "plot_activation_mass",
    "plot_frontier",
    "progressive_frontier",
    "sparsity_frontier",
    "DEFAULT_CENTRAL",
    "DictionaryPowerLaw",
    "FeatureSplitting",
    "PowerLawFit",
    "ScalingLawFit",
    "ScalingPoint",
    "StatisticPowerLaw",
    "decoder_eigenvalues",
    "decoder_similarity",
    "dictionary_power_law",
    "fit_power_law",
    "fit_scaling_law",
    "new_figure",
    "plot_decoder_similarity",
    "plot_power_law",
    "plot_scaling_law",
    "plot_split_counts",
    "save_figure",
    "split_counts",
]
