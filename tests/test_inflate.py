"""Inflation: static-clip equivalence on real torchvision/timm networks, BN-stat copy, last_n,
init="mean" edge semantics, time-folding of layers that break on 5-D, and refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from gva.models import InflationError, build_backbone, inflate, inflate_with_report
from gva.models.inflate import InflatedBatchNorm3d, InflatedConv3d

SIZE = 32
ARCHS = ["vgg11", "vgg11_bn", "resnet18", "timm:resnet18", "timm:convnext_atto"]


def _perturb_norms(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN running stats / affine params (and LayerNorm affine), so copying is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
                m.num_batches_tracked.fill_(7)
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)


@pytest.fixture(scope="module", params=ARCHS)
def pair(request):
    torch.manual_seed(0)
    model2d = build_backbone(request.param, num_classes=5, pretrained=False)
    _perturb_norms(model2d)
    model2d.eval()
    model3d, report = inflate_with_report(model2d, time_kernel=3, init="centre", probe_size=SIZE)
    return request.param, model2d, model3d.eval(), report


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_static_clip_gives_2d_logits(pair, frames):
    arch, model2d, model3d, _ = pair
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        y2 = model2d(x)
        y3 = model3d(x.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous())
    assert y3.shape == y2.shape == (2, 5)
    assert (y3 - y2).abs().max().item() < 1e-4, arch
    assert y2.abs().max().item() > 1e-3  # not a vacuous comparison of zeros


def test_layers_converted_and_weights_transferred(pair):
    arch, model2d, model3d, report = pair
    assert report.untransferred == [] and report.new == []
    assert model3d.inflation_report is report
    convs2d = {n: m for n, m in model2d.named_modules() if isinstance(m, nn.Conv2d)}
    mods3d = dict(model3d.named_modules())
    assert convs2d
    for name, conv in convs2d.items():
        c3 = mods3d[name]
        assert isinstance(c3, nn.Conv3d) and c3.kernel_size == (3, *conv.kernel_size)
        assert c3.stride == (1, *conv.stride) and c3.padding[0] == 1
        assert c3.groups == conv.groups and c3.dilation == (1, *conv.dilation)
        torch.testing.assert_close(c3.weight[:, :, 1], conv.weight, rtol=0, atol=0)
        assert c3.weight[:, :, 0].abs().max() == 0 and c3.weight[:, :, 2].abs().max() == 0
    for name, bn in ((n, m) for n, m in model2d.named_modules() if isinstance(m, nn.BatchNorm2d)):
        b3 = mods3d[name]
        assert isinstance(b3, nn.BatchNorm3d)
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(b3, key), getattr(bn, key), rtol=0, atol=0)
    assert not any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) for m in model3d.modules())


def test_temporal_kernels_are_wired_through_time(pair):
    """Centre init is per-frame (so frame order can't matter); a non-zero side slice in the first
    inflated conv must make the output depend on frame order -- time really flows through."""
    arch, _, model3d, _ = pair
    clip = torch.randn(1, 3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    first = next(m for m in model3d.modules() if isinstance(m, InflatedConv3d))
    with torch.no_grad():
        assert torch.allclose(model3d(clip), model3d(clip.flip(2)), atol=1e-5)
        saved = first.weight[:, :, 0].clone()
        try:
            first.weight[:, :, 0] = first.weight[:, :, 1]
            y, y_rev = model3d(clip), model3d(clip.flip(2))
        finally:
            first.weight[:, :, 0] = saved
    assert y.shape == (1, 5) and torch.isfinite(y).all()
    assert (y - y_rev).abs().max().item() > 1e-4, arch


def test_input_model_untouched():
    model2d = build_backbone("resnet18", 4, pretrained=False)
    before = {k: v.clone() for k, v in model2d.state_dict().items()}
    inflate(model2d, probe_size=SIZE)
    assert not any(isinstance(m, (nn.Conv3d, nn.BatchNorm3d)) for m in model2d.modules())
    assert "forward" not in vars(model2d)
    for k, v in model2d.state_dict().items():
        assert torch.equal(v, before[k])


def test_last_n_only_last_convs_temporal():
    torch.manual_seed(0)
    model2d = build_backbone("timm:resnet18", 4, pretrained=False)
    _perturb_norms(model2d)
    model2d.eval()
    model3d, report = inflate_with_report(model2d, time_kernel=5, last_n=3, probe_size=SIZE)
    convs = [(n, m) for n, m in model3d.named_modules() if isinstance(m, InflatedConv3d)]
    kts = [m.kernel_size[0] for _, m in convs]
    assert kts == [1] * (len(kts) - 3) + [5, 5, 5]
    assert [n for n, _ in convs[-3:]] == report.temporal_convs
    assert all(m.padding[0] == m.kernel_size[0] // 2 for _, m in convs)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        for frames in (1, 4):
            y3 = model3d.eval()(x.unsqueeze(2).expand(-1, -1, frames, -1, -1))
            assert (y3 - model2d(x)).abs().max().item() < 1e-4


def _toy_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def test_last_n_zero_and_larger_than_depth():
    model2d = _toy_cnn()
    none = inflate(model2d, last_n=0, probe_size=16)
    assert [m.kernel_size[0] for m in none.modules() if isinstance(m, nn.Conv3d)] == [1, 1, 1]
    every = inflate(model2d, last_n=10, probe_size=16)
    assert [m.kernel_size[0] for m in every.modules() if isinstance(m, nn.Conv3d)] == [3, 3, 3]


def test_mean_init_weights_and_edge_caveat():
    """init="mean": kernel/T on every slice; with zero temporal padding the edge frames see only
    part of the kernel (here 2 of 3 slices), the interior frames reproduce the 2-D output."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    model3d = inflate(nn.Sequential(conv), time_kernel=3, init="mean", probe_size=8)
    w = model3d[0].weight
    for t in range(3):
        torch.testing.assert_close(w[:, :, t], conv.weight / 3)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y2 = conv(x)
        y3 = model3d(x.unsqueeze(2).expand(-1, -1, 5, -1, -1))
    for t in (1, 2, 3):
        torch.testing.assert_close(y3[:, :, t], y2, atol=1e-5, rtol=1e-5)
    b = conv.bias.view(1, -1, 1, 1)
    for t in (0, 4):
        torch.testing.assert_close(y3[:, :, t], (y2 - b) * 2 / 3 + b, atol=1e-5, rtol=1e-5)


def test_mean_init_breaks_static_equivalence_in_deep_net():
    torch.manual_seed(0)
    model2d = _toy_cnn().eval()
    model3d = inflate(model2d, init="mean", probe_size=16).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        diff = (model3d(x.unsqueeze(2).expand(-1, -1, 3, -1, -1)) - model2d(x)).abs().max().item()
    assert diff > 1e-3  # the documented caveat: edge frames see zero padding


class _ChannelsLastBlock(nn.Module):
    """A block whose forward permutes to channels-last: breaks on 5-D, fine per frame."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.LayerNorm(c)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)
        return self.norm(x).permute(0, 3, 1, 2)


class _FunctionalPoolNet(nn.Module):
    """forward() pools and flattens functionally, like torchvision's densenet/shufflenet."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.bn(self.stem(x)).mean((2, 3)))


def test_block_that_breaks_on_5d_is_folded_but_still_temporal():
    torch.manual_seed(0)
    model2d = nn.Sequential(nn.Conv2d(3, 4, 1), _ChannelsLastBlock(4)).eval()
    model3d, report = inflate_with_report(model2d, probe_size=8)
    assert report.folded == ["1"]
    assert isinstance(model3d[1].conv, InflatedConv3d)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        y3 = model3d(x.unsqueeze(2).expand(-1, -1, 3, -1, -1))
        torch.testing.assert_close(y3[:, :, 1], model2d(x), atol=1e-5, rtol=1e-5)
        # the inflated conv inside the folded block still mixes neighbouring frames
        with torch.no_grad():
            model3d[1].conv.weight[:, :, 0] = model3d[1].conv.weight[:, :, 1]
        clip = torch.zeros(1, 3, 3, 8, 8)
        clip[:, :, 0] = x
        a = model3d(clip)
        clip[:, :, 0] = 0
        b = model3d(clip)
        assert (a[:, :, 1] - b[:, :, 1]).abs().max() > 1e-3


def test_functional_pooling_folds_root_and_averages_logits():
    torch.manual_seed(0)
    model2d = _FunctionalPoolNet()
    _perturb_norms(model2d)
    model2d.eval()
    model3d, report = inflate_with_report(model2d, probe_size=8)
    assert report.folded == ["<root>"]
    assert isinstance(model3d.bn, InflatedBatchNorm3d)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        for frames in (1, 3, 5):
            y3 = model3d.eval()(x.unsqueeze(2).expand(-1, -1, frames, -1, -1))
            torch.testing.assert_close(y3, model2d(x), atol=1e-5, rtol=1e-5)


def test_unusable_layer_is_refused_with_its_name():
    class FixedSize(nn.Module):
        def forward(self, x):
            if x.shape[-1] != 224:
                raise AssertionError(f"input width {x.shape[-1]} != 224")
            return x

    model2d = nn.Sequential(nn.Conv2d(3, 4, 3), FixedSize(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 2))
    with pytest.raises(InflationError, match=r"'1'.*FixedSize"):
        inflate(model2d, probe_size=16)


def test_bad_arguments():
    model2d = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(InflationError, match="odd"):
        inflate(model2d, time_kernel=2)
    with pytest.raises(InflationError, match="init"):
        inflate(model2d, init="zeros")  # type: ignore[arg-type]
