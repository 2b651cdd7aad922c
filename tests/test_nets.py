"""One parametrised suite over the net registry: a net registered later joins it automatically."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch

from medden import nets
from medden.nets.blocks import SOBEL, DynamicConv, GradientFilter, estimate_sigma

CASES_2D = [(name, c) for name in nets.available() for c in nets.spec(name).channels]
CASES_3D = [
    (name, nets.spec(name).channels[0]) for name in nets.available() if 3 in nets.spec(name).spatial_dims
]
NAMES = nets.available()
#: the published MIRNet (31.8 M parameters) is slow on a CPU: its exhaustive checks run in `make test-slow`
HEAVY = {"mirnet"}
NAMES_FAST = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in NAMES]


def _build(name: str, channels: int, spatial_dims: int = 2, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return nets.get(name, spatial_dims=spatial_dims, in_channels=channels, out_channels=channels, **kwargs)


def _sigma(net: torch.nn.Module, batch: int) -> torch.Tensor | None:
    return torch.full((batch,), 0.05) if net.noise_aware else None


@pytest.mark.parametrize(
    "name, channels",
    [pytest.param(n, c, marks=pytest.mark.slow) if n in HEAVY else (n, c) for n, c in CASES_2D],
)
def test_odd_size_batch_two_keeps_shape(name, channels):
    net = _build(name, channels).eval()
    x = torch.rand(2, channels, 67, 93)
    with torch.no_grad():
        y = net(x)
        y_sigma = net(x, torch.full((2,), 0.1))  # every net accepts a sigma, used or not
    assert y.shape == x.shape and y_sigma.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name, channels", CASES_3D)
def test_3d_odd_size(name, channels):
    net = _build(name, channels, spatial_dims=3).eval()
    x = torch.rand(1, channels, 11, 13, 15)
    with torch.no_grad():
        assert net(x).shape == x.shape


@pytest.mark.parametrize("name", [n for n in NAMES if 3 not in nets.spec(n).spatial_dims])
def test_2d_only_nets_refuse_3d(name):
    with pytest.raises(ValueError, match="spatial_dims"):
        _build(name, nets.spec(name).channels[0], spatial_dims=3)


@pytest.mark.parametrize("name", NAMES_FAST)
def test_every_parameter_receives_a_gradient(name):
    c = nets.spec(name).channels[0]
    net = _build(name, c).train()
    x = torch.rand(2, c, 24, 40)
    net(x, _sigma(net, 2)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("name", NAMES_FAST)
def test_eval_is_deterministic_and_batch_independent(name):
    c = nets.spec(name).channels[0]
    net = _build(name, c).eval()
    x = torch.rand(2, c, 40, 36)
    with torch.no_grad():
        a, b = net(x, _sigma(net, 2)), net(x, _sigma(net, 2))
        single = net(x[1:], _sigma(net, 1))
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:], single, rtol=1e-4, atol=1e-5)  # no mixing across the batch


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("name", NAMES_FAST)
def test_torchscript_trace_gives_same_output(name):
    c = nets.spec(name).channels[0]
    net = _build(name, c).eval()
    x = torch.rand(1, c, 32, 48)
    sigma = torch.full((1,), 0.05)
    with torch.no_grad():
        traced = torch.jit.trace(net, (x, sigma), check_trace=False)
        torch.testing.assert_close(traced(x, sigma), net(x, sigma), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES_FAST)
def test_safetensors_round_trip(name, tmp_path):
    from medden.checkpoints import load_net, save_weights

    c = nets.spec(name).channels[0]
    kwargs = {"spatial_dims": 2, "in_channels": c, "out_channels": c}
    net = _build(name, c).eval()
    save_weights(net, tmp_path / "w.safetensors", net=name, net_kwargs=kwargs)
    loaded = load_net(tmp_path / "w.safetensors")
    x = torch.rand(1, c, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x, _sigma(net, 1)), net(x, _sigma(net, 1)))


@pytest.mark.parametrize("name", NAMES)
def test_ablation_flag_changes_parameter_count(name):
    s = nets.spec(name)
    assert s.ablation, f"{name} registers no ablation flag"
    c = s.channels[0]
    assert nets.count_parameters(_build(name, c, **s.ablation)) != nets.count_parameters(_build(name, c))


@pytest.mark.parametrize("name", NAMES_FAST)
def test_noise_level_is_used_only_by_noise_aware_nets(name):
    c = nets.spec(name).channels[0]
    net = _build(name, c).eval()
    x = torch.rand(1, c, 32, 32)
    with torch.no_grad():
        low, high = net(x, torch.tensor([0.01])), net(x, torch.tensor([0.2]))
        plain = net(x)
    assert torch.equal(low, high) != net.noise_aware
    assert plain.shape == x.shape


def test_registry_errors_and_defaults():
    with pytest.raises(KeyError, match="available"):
        nets.get("no-such-net")
    assert nets.available() == sorted(nets.available())
    assert nets.get("hmadnet-compact").encoders[0].body[0].out_channels == 16
    with pytest.raises(ValueError, match="already registered"):
        nets.register(nets.spec("dncnn"))


def test_published_parameter_counts():
    # MIRNet's published configuration has 31.8 M parameters (Zamir et al. 2020)
    assert abs(nets.count_parameters(nets.get("mirnet")) / 31.8e6 - 1) < 0.01
    # DnCNN-S (17 layers, 64 features, gray): 556 K parameters in the paper (0.56 M)
    assert abs(nets.count_parameters(nets.get("dncnn")) / 0.556e6 - 1) < 0.01


def test_dran_blocks_are_distinct():
    net = nets.get("dran", features=8, num_blocks=3)
    ptrs = {b.body[0].weight.data_ptr() for b in net.blocks}
    assert len(ptrs) == 3


def test_dynamic_conv_matches_per_sample_static_conv():
    torch.manual_seed(0)
    dc = DynamicConv(2, 3, 5, num_kernels=4).eval()
    x = torch.rand(2, 3, 9, 11)
    y = dc(x)
    pi = torch.softmax(dc.attention(x).flatten(1) / dc.temperature, dim=1)
    for i in range(2):
        w = (pi[i, :, None, None, None, None] * dc.weight).sum(0)
        b = (pi[i, :, None] * dc.bias).sum(0)
        ref = torch.nn.functional.conv2d(x[i : i + 1], w, b, padding=1)
        torch.testing.assert_close(y[i : i + 1], ref, rtol=1e-5, atol=1e-5)


def test_sobel_kernels_are_true_transposes_and_respond_to_their_edges():
    h, v = np.array(SOBEL["h"]), np.array(SOBEL["v"])
    assert np.array_equal(v, h.T)
    ramp = torch.arange(16.0).repeat(16, 1)[None, None] / 16  # increases along x
    g = GradientFilter(1, ("h", "v", "d45", "d135"))(ramp)[0, :, 4:-4, 4:-4]
    assert torch.allclose(g[0], torch.full_like(g[0], 1 / 16))  # d/dx of the ramp
    assert torch.allclose(g[1], torch.zeros_like(g[1]))  # no change along y
    assert g[2].abs().mean() > 0 and g[3].abs().mean() > 0


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_estimate_sigma_recovers_gaussian_noise(sigma):
    gen = torch.Generator().manual_seed(1)
    x = 0.5 + sigma * torch.randn(2, 1, 128, 128, generator=gen)
    est = estimate_sigma(x)
    assert torch.all((est / sigma - 1).abs() < 0.05)


@pytest.mark.parametrize("module", ["dncnn", "hmadnet", "dran", "gimsanet", "mgmsdnet", "mirnet", "registry"])
def test_docstring_examples_run(module):
    mod = importlib.import_module(f"medden.nets.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_models_command_lists_every_net_with_its_parameter_count(capsys):
    import json

    from medden.cli import main

    assert main(["models", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows = [r for r in lines if r["kind"] == "architecture"]  # after the bundles and the baselines
    assert [r["name"] for r in rows] == NAMES
    for r in rows:
        c = nets.spec(r["name"]).channels[0]
        assert r["parameters"] == nets.count_parameters(nets.get(r["name"], in_channels=c, out_channels=c))
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[next(i for i, line in enumerate(out) if line.startswith("Architectures")) + 1 :]
    assert len(table) == len(NAMES) + 1  # a header and one line per net
    for name, line in zip(NAMES, table[1:]):
        assert line.split()[0] == name and f"{rows[NAMES.index(name)]['parameters']:,}" in line


def test_hmadnet_noise_level_input_option():
    torch.manual_seed(0)
    blind = nets.get("hmadnet-compact", features=(8, 16))
    aware = nets.get("hmadnet-compact", features=(8, 16), noise_level_input=True).eval()
    assert not blind.noise_aware and aware.noise_aware
    assert aware.encoders[0].body[0].in_channels == 2  # image + σ map
    x = torch.rand(2, 1, 24, 20)
    with torch.no_grad():
        low, high = aware(x, 0.01), aware(x, 0.2)
        per_item = aware(x, torch.tensor([0.01, 0.2]))
    assert not torch.equal(low, high)
    assert torch.allclose(per_item[0], low[0], atol=1e-6) and torch.allclose(per_item[1], high[1], atol=1e-6)
    assert aware(x).shape == x.shape  # σ estimated inside when not given


@pytest.mark.parametrize("attention", [True, False])
def test_inflated_2d_weights_make_a_3d_net_that_acts_slice_wise(attention, tmp_path):
    """Centre-slice inflation (odd kernels) and depth repetition (the stride-2 upsampling): on a volume
    that is constant along depth, the inflated 3D HMAD-Net gives the 2D net's output on every slice."""
    from medden.checkpoints import load_weights, save_weights

    torch.manual_seed(0)
    kw = {"features": (8, 16, 32), "noise_level_input": True, "output": "residual", "attention": attention}
    net2 = nets.get("hmadnet-compact", **kw).eval()
    path = tmp_path / "w2d.safetensors"
    save_weights(net2, path, "hmadnet-compact", kw)
    net3 = nets.get("hmadnet-compact", spatial_dims=3, **kw).eval()
    with pytest.raises(Exception, match="do not fit"):
        load_weights(net3, path)  # 2D weights do not load into a 3D net unless asked to inflate
    load_weights(net3, path, adapt=True)
    image = torch.rand(1, 1, 20, 24)
    volume = image[..., None].repeat(1, 1, 1, 1, 8)
    with torch.no_grad():
        want = net2(image, 0.05)
        got = net3(volume, 0.05)
    assert torch.allclose(got, want[..., None].expand_as(got), atol=1e-5)
    # and it is a 3D net: a volume that varies along depth is not denoised slice by slice any more
    # once the off-centre taps train (they start at zero, so they receive a gradient)
    volume = torch.rand(1, 1, 16, 16, 8, requires_grad=False)
    net3.train()
    net3(volume, 0.05).square().mean().backward()
    assert net3.encoders[0].body[0].weight.grad[..., 0].abs().sum() > 0


@pytest.mark.parametrize("name", ["mgmsdnet-compact", "gimsanet-compact", "hmadnet-compact"])
def test_blind_weights_start_a_noise_aware_net_as_it_was(name, tmp_path):
    """The σ channel's weights start at zero: the noise-aware net gives the blind net's output whatever
    σ it is given, and the σ weights receive a gradient (so training teaches the net to use σ)."""
    from medden.checkpoints import load_weights, save_weights

    torch.manual_seed(0)
    small = {"features": (8, 16)} if name.startswith("hmadnet") else {"features": 8, "num_blocks": 2}
    blind = nets.get(name, **small).eval()
    path = tmp_path / "blind.safetensors"
    save_weights(blind, path, name, small)
    aware = nets.get(name, noise_level_input=True, **small).eval()
    with pytest.raises(Exception, match="do not fit"):
        load_weights(aware, path)
    load_weights(aware, path, adapt=True)
    x = torch.rand(2, 1, 24, 20)
    with torch.no_grad():
        want = blind(x)
        for sigma in (0.01, 0.3):
            assert torch.allclose(aware(x, sigma), want, atol=1e-6)
    aware.train()
    aware(x, 0.2).square().mean().backward()
    first = next(p for n, p in aware.named_parameters() if p.ndim == 4 and p.shape[1] == 2)
    assert first.grad[:, 1].abs().sum() > 0
