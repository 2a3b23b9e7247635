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


def _reader_module():
    sys.path.insert(0, str(PEERS))
    try:
        import _driver_common
    finally:
        sys.path.remove(str(PEERS))
    return _driver_common


def test_shuffled_passes_serve_every_row_once_a_pass_in_a_new_order(tmp_path):
    import numpy as np

    common = _reader_module()
    rows = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.save(tmp_path / "rows.npy", rows)
    reader = common.RowReader(tmp_path / "rows.npy", 60, shuffle_seed=3)
    batches = [reader.take(6).numpy() for _ in range(10)]  # 3 passes; batches straddle them
    served = np.concatenate(batches)[:, 0] / 2
    passes = served.reshape(3, 20)
    for p in passes:
        assert sorted(p.tolist()) == list(range(20))
    assert not (passes[0] == passes[1]).all()
    again = common.RowReader(tmp_path / "rows.npy", 60, shuffle_seed=3)
    assert all((again.take(6).numpy() == b).all() for b in batches)
    in_order = common.RowReader(tmp_path / "rows.npy")
    assert (in_order.take(20).numpy() == rows).all()
    with pytest.raises(ValueError, match="20 rows, 60 needed"):
        common.RowReader(tmp_path / "rows.npy", 60)
