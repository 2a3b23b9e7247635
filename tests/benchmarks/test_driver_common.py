"""The benchmark drivers' shared measurements."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_drivers_peak_rss_is_its_own_not_its_parents():
    ballast = bytearray(400 << 20)
    for i in range(0, len(ballast), 4096):  # make the parent's 400 MB resident
        ballast[i] = 1
    code = (f"import sys; sys.path.insert(0, {str(PEERS)!r}); import _driver_common as c; "
            "print(c.peak_rss_mb())")
    child_peak = float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, check=True).stdout)
    del ballast
    # The child imports torch (~100-300 MB) but never holds the parent's 400 MB.
    assert 0 < child_peak < 380, child_peak
