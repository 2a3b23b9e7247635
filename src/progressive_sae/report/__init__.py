"""Results of a run → an HTML report with a Markdown copy, claims beside findings."""

from progressive_sae.report.claim import Claim
from progressive_sae.report.claims import evaluate_claims
from progressive_sae.report.render import write_report

__all__ = ["Claim", "evaluate_claims", "write_report"]
