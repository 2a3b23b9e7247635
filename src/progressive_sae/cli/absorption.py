"""`psae absorption`: feature absorption of SAEs on a synthetic hierarchy or an LM task."""

from __future__ import annotations

import argparse

from progressive_sae.cli.common import int_list
from progressive_sae.errors import PSAEError


def cmd_absorption(args: argparse.Namespace) -> None:
    from progressive_sae.analysis.standalone import load_saes
    from progressive_sae.evals.absorption import AbsorptionConfig, PromptConfig
    from progressive_sae.evals.absorption.files import write_result_files

    if (args.synthetic is None) == (args.lm is None):
        raise PSAEError("give either --synthetic PRESET_OR_YAML or --lm MODEL --hook H")
    saes = load_saes(args.sae)
    granularities = int_list(args.granularities) if args.granularities else None
    modes = args.modes.split(",")
    if args.synthetic is not None:
        from progressive_sae.evals.hierarchy import HierarchyConfig, evaluate_hierarchy
        from progressive_sae.evals.hierarchy.config import synthetic_hierarchy

        config = HierarchyConfig(rows=args.rows, resamples=args.resamples, seed=args.seed)
        result = evaluate_hierarchy(saes, synthetic_hierarchy(args.synthetic), granularities,
                                    modes, config)
        for v in result.views:
            gap = "n/a" if v.mean_gap is None else f"{v.mean_gap.value:.3f}"
            print(f"{v.sae} {v.view.label}: mean gap {gap}, matched |cos| "
                  f"{v.matched_mean_abs_cos:.3f}")
    else:
        from progressive_sae.evals.absorption import evaluate_lm_absorption
        from progressive_sae.lm import load_lm

        if args.hook is None:
            raise PSAEError("--lm needs --hook (the hook point the SAEs read, e.g. layers.2)")
        prompts = PromptConfig(template=args.template, icl_examples=args.icl_examples,
                               max_words=args.max_words)
        config = AbsorptionConfig(resamples=args.resamples, seed=args.seed)
        result = evaluate_lm_absorption(
            saes, load_lm(args.lm), args.hook, args.task, granularities, modes, config,
            prompts, args.data, args.rows_per_class)
        gated = [p.name for p in result.probes if p.status == "gated"]
        print(f"task {result.task}: {len(result.scored_classes)} classes scored, "
              f"{len(gated)} gated")
        for v in result.views:
            e = v.mean_absorption_fraction
            print(f"{v.sae} {v.view.label}: mean absorption "
                  + ("n/a (nothing scored)" if e is None else
                     f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"))
    written = write_result_files(result, args.out)
    print("wrote " + ", ".join(map(str, written)))


def register(sub: argparse._SubParsersAction) -> None:
    from progressive_sae.evals.absorption.config import TASKS
    from progressive_sae.evals.absorption.first_letter import DEFAULT_TEMPLATE

    p = sub.add_parser("absorption", help="feature absorption: synthetic hierarchy or LM task")
    p.add_argument("sae", nargs="+", help="SAE folders or files (any supported format)")
    p.add_argument("--synthetic", help="a synthetic preset (toy_tree) or YAML with synthetic:")
    p.add_argument("--lm", help="language model (offline-default, a folder or a hub name)")
    p.add_argument("--hook", help="hook point the SAEs read, e.g. layers.2")
    p.add_argument("--data", help="activations with token ids for a token task: an "
                   "activation-cache folder or a YAML config (else the corpus)")
    p.add_argument("--task", choices=TASKS, default="first-letter")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="first-letter prompt")
    p.add_argument("--icl-examples", dest="icl_examples", type=int, default=2)
    p.add_argument("--max-words", dest="max_words", type=int, help="first-letter word sample")
    p.add_argument("--rows-per-class", dest="rows_per_class", type=int, default=256)
    p.add_argument("--rows", type=int, default=16384, help="synthetic rows evaluated")
    p.add_argument("--granularities", help="G values, e.g. 64,256 (besides the full size)")
    p.add_argument("--modes", default="relative,prefix", help="granularity modes")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the JSON and PNG")
    p.set_defaults(func=cmd_absorption)
