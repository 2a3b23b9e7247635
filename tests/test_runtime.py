"""The CPU allocator setting: freed memory is reused without faults, and handed back on demand."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

# Run in a fresh interpreter: the setting is process-wide and this process has allocated
# (and freed) plenty already.
PROBE = textwrap.dedent("""
    import resource, sys
    import torch
    from progressive_sae.runtime import configure_cpu_allocator, release_cpu_memory

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    configured = configure_cpu_allocator() if sys.argv[1] == "configured" else False
    refaults = []
    for _ in range(10):  # as a training step: the same large temporary, allocated and freed
        before = faults()
        t = torch.empty(64 << 18)  # 64 MiB
        t.fill_(1.0)
        del t
        refaults.append(faults() - before)
    refaults = sum(refaults[5:])  # the first rounds may still grow the heap
    held = rss_mb()
    release_cpu_memory()
    print(configured, refaults, held - rss_mb())
""")


def probe(mode: str) -> tuple[bool, int, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1]), float(out[2])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_tensors_are_reused_without_faulting_and_released_at_the_end():
    configured, refaults, returned_mb = probe("configured")
    assert configured
    # 64 MiB is 16,384 pages of 4 KiB; faulting them in again would count about that many
    # each round. (glibc pads an aligned request, so the second or third round may not fit
    # an earlier round's hole and grows the heap once more; measured, never past the third.)
    assert refaults < 1000
    # Configured, the freed 64 MiB stays in the heap until release_cpu_memory returns it.
    assert returned_mb > 32
    _, default_refaults, _ = probe("default")
    assert default_refaults > 4 * refaults  # glibc's default unmapped the freed tensor
