"""Exports: every bundle's ``models/model.pt`` and ``models/model.ts`` against its safetensors, MONAI's
``ckpt_export`` with its defaults, and ``medden export`` (TorchScript, ONNX) for every registered net
at three sizes, odd ones included, against the eager net."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medden import nets
from medden.bundle_format import WEIGHTS, load_network, read_metadata
from medden.checkpoints import load_net, save_weights
from medden.workflows.export import ONNX_UNSUPPORTED, TOLERANCE, export_model

ROOT = Path(__file__).resolve().parents[1] / "bundles"
BUNDLES = sorted(p.parents[1].name for p in ROOT.glob("*/configs/inference.json"))
PT, TS = "models/model.pt", "models/model.ts"
#: tiny check sizes (one even, two odd; every net's padding multiple is at most 8) and, for the
#: independent checks, one more odd size with a batch of 2
SIZES = {2: [(16, 16), (21, 21), (9, 30)], 3: [(8, 8, 8), (9, 11, 10), (5, 7, 6)]}
OTHER = {2: (23, 17), 3: (7, 9, 12)}
#: the published MIRNet (31.8 M parameters) is slow on a CPU: `make test-slow`
HEAVY = {"mirnet"}
CASES = [
    pytest.param(n, sd, marks=pytest.mark.slow) if n in HEAVY else (n, sd)
    for n in nets.available()
    for sd in nets.spec(n).spatial_dims
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _calls(net: torch.nn.Module, x: torch.Tensor) -> list[tuple]:
    """The calls to compare: with and without σ for a noise-aware net."""
    if not net.noise_aware:
        return [(x,)]
    return [(x,), (x, torch.linspace(0.02, 0.1, x.shape[0]))]


def _max_diff(exported, net: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return max(float((exported(*c) - net(*c)).abs().max()) for c in _calls(net, x))


def _weights(tmp_path: Path, name: str, spatial_dims: int, **kwargs) -> Path:
    """A weights file of the registered net at its default widths (random weights, fixed seed)."""
    c = nets.spec(name).channels[0]
    args = {"spatial_dims": spatial_dims, "in_channels": c, "out_channels": c, **kwargs}
    torch.manual_seed(0)
    path = tmp_path / f"{name}.safetensors"
    save_weights(nets.get(name, **args), path, net=name, net_kwargs=args)
    return path


# ------------------------------------------------------------------------------------------------
# the bundles' model.pt and model.ts
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_model_pt_and_ts_match_the_safetensors(name):
    root = ROOT / name
    record = read_metadata(root)["medden"]["artifacts_sha256"]
    assert set(record) == {PT, TS}
    for file, digest in record.items():
        assert _sha256(root / file) == digest, f"{file} is not the file recorded: run bundles/artifacts.py"
    net = load_network(None, root).fn  # the safetensors, checked against medden.weights_sha256
    from safetensors.torch import load_file

    shipped = load_file(str(root / WEIGHTS))
    state = torch.load(root / PT, map_location="cpu", weights_only=True)
    assert state.keys() == shipped.keys()
    assert all(torch.equal(state[k], shipped[k]) for k in shipped)
    ts = torch.jit.load(str(root / TS), map_location="cpu")  # plain TorchScript, no medden needed
    x = torch.rand((2, net.in_channels) + OTHER[net.spatial_dims], generator=torch.Generator().manual_seed(0))
    assert _max_diff(ts, net, x) <= 1e-5


@pytest.mark.parametrize(
    "name", [n if n == "dran_mri" else pytest.param(n, marks=pytest.mark.slow) for n in BUNDLES]
)
def test_monai_ckpt_export_runs_with_its_defaults(name, tmp_path, monkeypatch):
    """``python -m monai.bundle ckpt_export --config_file configs/inference.json`` from the bundle
    folder: reads models/model.pt, scripts the network_def, writes models/model.ts."""
    from monai.bundle import ckpt_export

    copy = tmp_path / name
    for part in ("configs", "models"):
        shutil.copytree(ROOT / name / part, copy / part)
    (copy / TS).unlink()
    monkeypatch.chdir(copy)
    ckpt_export(config_file="configs/inference.json")
    net = load_network(None, copy).fn
    x = torch.rand((1, net.in_channels) + OTHER[net.spatial_dims], generator=torch.Generator().manual_seed(1))
    assert _max_diff(torch.jit.load(str(copy / TS)), net, x) <= 1e-5


# ------------------------------------------------------------------------------------------------
# medden export, every registered net
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, spatial_dims", CASES)
def test_torchscript_export_of_every_net_matches_eager(name, spatial_dims, tmp_path):
    weights = _weights(tmp_path, name, spatial_dims)
    out = tmp_path / "net.ts"
    record = export_model(str(weights), "torchscript", output=out, sizes=SIZES[spatial_dims])
    assert record["max_abs_diff"] <= TOLERANCE
    assert record["checked_sizes"] == [list(s) for s in SIZES[spatial_dims]]
    assert record["sha256"] == _sha256(out)
    # checked again here, not by the exporter: plain torch.jit.load, another odd size, batch 2
    net = load_net(weights)
    x = torch.rand((2, net.in_channels) + OTHER[spatial_dims], generator=torch.Generator().manual_seed(2))
    assert _max_diff(torch.jit.load(str(out)), net, x) <= TOLERANCE


def _onnx_run(path: Path, net: torch.nn.Module, x: torch.Tensor, sigma: torch.Tensor | None) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy()} | ({"sigma": sigma.numpy()} if sigma is not None else {})
    assert [i.name for i in session.get_inputs()] == list(feed)
    return session.run(None, feed)[0]


@pytest.mark.slow  # torch.export + ONNX conversion: 10-40 s a net on this machine
@pytest.mark.parametrize("name, spatial_dims", CASES)
def test_onnx_export_of_every_net_matches_eager(name, spatial_dims, tmp_path):
    weights = _weights(tmp_path, name, spatial_dims)
    net = load_net(weights)
    if type(net).__name__ in ONNX_UNSUPPORTED:
        with pytest.raises(ValueError, match="no ONNX export"):
            export_model(str(weights), "onnx", output=tmp_path / "net.onnx", sizes=SIZES[spatial_dims])
        return
    record = export_model(str(weights), "onnx", output=tmp_path / "net.onnx", sizes=SIZES[spatial_dims])
    assert record["max_abs_diff"] <= TOLERANCE
    x = torch.rand((1, net.in_channels) + OTHER[spatial_dims], generator=torch.Generator().manual_seed(3))
    sigma = torch.tensor([0.05]) if net.noise_aware else None
    with torch.no_grad():
        expected = (net(x, sigma) if sigma is not None else net(x)).numpy()
    assert np.abs(_onnx_run(tmp_path / "net.onnx", net, x, sigma) - expected).max() <= TOLERANCE


def test_onnx_export_command_takes_sigma_as_a_second_input(tmp_path, capsys):
    """A noise-aware net's ONNX graph has inputs ``image`` and ``sigma`` (B,), dynamic H and W: the
    given σ changes the output as in the eager net, at a size the export never saw (70×70)."""
    from medden.cli import main

    weights = _weights(tmp_path, "dran-compact", 2, features=8, num_blocks=2)
    before = _sha256(weights)
    out = tmp_path / "dran.onnx"
    args = ["export", str(weights), "--format", "onnx", "--out", str(out), "--json"]
    assert main(args + ["--check-sizes", "16x16,21x21,9x30"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["max_abs_diff"] <= TOLERANCE and set(record["inputs"]) == {"image", "sigma"}
    assert _sha256(weights) == before  # the input is never modified
    import onnx

    dims = [d.dim_param or d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 1 and all(isinstance(d, str) for d in dims[2:])  # H and W are symbolic
    net = load_net(weights)
    x = torch.rand(1, 1, 70, 70, generator=torch.Generator().manual_seed(4))
    outputs = []
    for s in (0.02, 0.1):
        sigma = torch.tensor([s])
        got = _onnx_run(out, net, x, sigma)
        with torch.no_grad():
            assert np.abs(got - net(x, sigma).numpy()).max() <= TOLERANCE
        outputs.append(got)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-4  # σ is used


def test_export_command_errors_are_one_line_and_keep_files(tmp_path, capsys):
    from medden.cli import main

    weights = _weights(tmp_path, "dncnn", 2, depth=3, features=8)
    out = tmp_path / "dncnn.ts"
    out.write_text("keep me")
    assert main(["export", str(weights), "--out", str(out)]) == 2  # exists, no --overwrite
    assert out.read_text() == "keep me"
    assert main(["export", str(tmp_path / "missing.safetensors")]) == 2
    assert main(["export", str(weights), "--out", str(weights), "--overwrite"]) == 2  # the input itself
    assert main(["export", str(weights), "--out", str(out), "--check-sizes", "16x16x16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("medden export: error:") for line in err)
    switching = _weights(tmp_path, "hmadnet-switching", 2, features=(8, 16))
    assert main(["export", str(switching), "--format", "onnx", "--out", str(tmp_path / "s.onnx")]) == 2
    assert "no ONNX export" in capsys.readouterr().err
    assert not (tmp_path / "s.onnx").exists()
    assert (
        main(["export", str(weights), "--out", str(out), "--overwrite", "--check-sizes", "8x8,9x9,5x7"]) == 0
    )
    assert torch.jit.load(str(out))(torch.rand(1, 1, 11, 13)).shape == (1, 1, 11, 13)
