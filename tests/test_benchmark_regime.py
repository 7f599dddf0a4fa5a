"""benchmarks/regime.py runs end to end on a tiny network, and its frozen-prefix timing stops where
train.freeze says (so its ``prefix`` and ``cached`` columns measure the frozen part)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import load_script

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "regime.py"
ARCH = "timm:test_resnet"


@pytest.fixture(scope="module")
def bench():
    return load_script(BENCH, "bench_regime")


def test_the_table_and_the_estimates(bench, capsys):
    threads = torch.get_num_threads()
    assert bench.main(["--arch", ARCH, "--sizes", "32", "--freeze", "none", "layer3", "--last-n", "null", "1",
                       "--no-paper", "--thread-check", "0", "--rounds", "1", "--batch-2d", "2",
                       "--batch-3d", "2", "--train", "20", "--val", "4", "--test", "4"]) == 0
    torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = {line[:47].strip(): line[47:].split() for line in out.splitlines() if line.startswith(("2d ", "3d "))}
    assert set(rows) == {"2d  32 px freeze none thr 1", "2d  32 px freeze layer3 thr 1",
                         "3d  32 px freeze none last_n null thr 1", "3d  32 px freeze none last_n 1 thr 1",
                         "3d  32 px freeze layer3 last_n null thr 1", "3d  32 px freeze layer3 last_n 1 thr 1"}
    assert rows["2d  32 px freeze none thr 1"][3] == "0%"            # nothing frozen: no prefix
    assert rows["2d  32 px freeze layer3 thr 1"][4] != "-"           # a per-image cache is possible
    assert rows["3d  32 px freeze layer3 last_n 1 thr 1"][4] != "-"
    assert rows["3d  32 px freeze layer3 last_n null thr 1"][4] == "-"  # frozen temporal convs: no cache
    regimes = [line for line in out.splitlines() if line.startswith("32 px")]
    assert len(regimes) == 4 and all(len(line.split()) == 15 for line in regimes)
    cached = {line.split(" thr")[0]: line.split()[-2] for line in regimes}
    assert cached["32 px, freeze layer3, last_n 1, 1"] != "-" and cached["32 px, freeze none, last_n 1, 1"] == "-"


def test_the_prefix_timing_stops_at_the_freeze_boundary(bench):
    from gva.models import build_backbone, inflate

    model3d = inflate(build_backbone(ARCH, 2, pretrained=False), last_n=1, probe_size=32)
    case = bench.Case("3d", 32, "layer3", 1, model=model3d)
    seen = []
    for name in ("layer2", "layer3", "fc"):
        model3d.get_submodule(name).register_forward_hook(lambda m, a, o, name=name: seen.append(name))
    x = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8)
    assert bench.time_prefix(case, x) > 0 and seen == ["layer2"]
    model3d(torch.zeros(1, 3, 3, 32, 32))  # the stop hook is gone and no fold is left open
    assert seen == ["layer2", "layer2", "layer3", "fc"]
