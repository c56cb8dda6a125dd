"""``nao export``: ONNX Runtime and TorchScript give the PyTorch network's logits on real
CIFAR-10 images, and the files carry the architecture and class names."""

from __future__ import annotations

import re
import sys
import warnings

import pytest
import torch

from conftest import nao_in_process


def real_inputs(cifar_mini, count: int = 3) -> torch.Tensor:
    from naonet.data import prepare_image

    files = [sorted((cifar_mini / "test" / name).iterdir())[0]
             for name in ("cat", "ship", "frog", "truck")[:count]]
    return torch.stack([prepare_image(file, "cifar10") for file in files])


def run_exported(path, export_format: str, inputs: torch.Tensor) -> torch.Tensor:
    if export_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return torch.from_numpy(session.run(None, {name: inputs.numpy()})[0])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(inputs)


@pytest.mark.parametrize("export_format, batch", [
    # the ONNX exporter traces for about 10 s: the README's own form (a dynamic batch)
    # runs by default, the fixed batch with -m slow
    ("onnx", "0"), pytest.param("onnx", "3", marks=pytest.mark.slow), ("torchscript", "0")])
def test_exported_model_gives_the_networks_logits(released_file, cifar_mini, tmp_path, capsys,
                                                  export_format, batch):
    if export_format == "onnx":
        pytest.importorskip("onnxruntime", reason="the export extra: pip install 'naonet[export]'")
    from naonet.compat.model_file import load_model
    from naonet.export import read_metadata

    path, _ = released_file
    out = tmp_path / ("exported.onnx" if export_format == "onnx" else "exported.pt")
    status, printed, err = nao_in_process(capsys, "export", str(path), str(out), "--format",
                                          export_format, "--batch-size", batch)
    assert status == 0, err
    assert f"input {'dynamic' if batch == '0' else batch} x 3 x 32 x 32" in printed
    network = load_model(path).network.eval()
    sizes = [3] if batch == "3" else [1, 3]  # a dynamic batch runs at any size
    for size in sizes:
        inputs = real_inputs(cifar_mini, size)
        with torch.no_grad():
            expected = network(inputs)[0]
        got = run_exported(out, export_format, inputs)
        # float32 throughout: the runtimes sum in other orders, about 1e-6 of the logits'
        # scale per layer over a few dozen layers
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
        assert torch.equal(got.argmax(1), expected.argmax(1))
    metadata = read_metadata(out)
    assert metadata["arch"] == load_model(path).architecture.to_qualified_string()
    assert metadata["classes"][:2] == ["airplane", "automobile"]
    assert metadata["image_size"] == 32 and len(metadata["mean"]) == 3
    assert "resized to 32 x 32 (PIL's bicubic)" in metadata["preprocessing"]  # the rule too
    status, shown, err = nao_in_process(capsys, "info", str(out))  # it refused the file
    assert status == 0, err
    assert shown.splitlines()[:4] == [
        f"{out}: an exported {'ONNX' if export_format == 'onnx' else 'TorchScript'} model "
        "(nao export)", f"architecture: {metadata['arch']}", "trained on: cifar10",
        "image size: 32"]
    assert f"preprocessing: {metadata['preprocessing']}" in shown
    # nao show draws the cells the file records, as from the checkpoint (it refused it)
    status, drawn, err = nao_in_process(capsys, "show", str(out), "-o",
                                        str(tmp_path / "cells.png"))
    assert status == 0, err
    status, from_checkpoint, err = nao_in_process(capsys, "show", str(path), "-o",
                                                  str(tmp_path / "cells2.png"))
    assert drawn.splitlines()[0] == from_checkpoint.splitlines()[0]
    if export_format == "onnx":  # the operator set a runtime must read, as the file has it
        import onnx

        from naonet.export import onnx_opset

        opset = onnx_opset(onnx.load(str(out)))
        assert metadata["opset"] == opset and f"(operator set {opset})" in printed
        assert shown.splitlines()[-1] == f"ONNX operator set: {opset}"


def test_an_export_at_another_size_says_the_size_it_was_trained_at(released_file, tmp_path,
                                                                    capsys):
    """--image-size 48 of a network trained at 32: the console said so, the file did not,
    and nao info showed 48 alone."""
    from naonet.export import read_metadata

    path, _ = released_file
    out = tmp_path / "at48.pt"
    status, _, err = nao_in_process(capsys, "export", str(path), str(out), "--image-size", "48")
    assert status == 0, err
    assert (read_metadata(out)["image_size"], read_metadata(out)["trained_image_size"]) == (48, 32)
    status, shown, err = nao_in_process(capsys, "info", str(out))
    assert status == 0 and "\nimage size: 48 (trained at 32)\n" in shown, err


def test_a_missing_export_extra_is_one_line(released_file, tmp_path, capsys, monkeypatch):
    path, _ = released_file
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    status, _, err = nao_in_process(capsys, "export", str(path), str(tmp_path / "m.onnx"))
    assert status == 2 and "pip install 'naonet[export]'" in err
    assert len(err.strip().splitlines()) == 1
    assert [file.name for file in tmp_path.iterdir()] == [path.name]  # nothing written


class LogitsPair(torch.nn.Module):
    """A small network with naonet's outputs (logits, auxiliary logits)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))

    def forward(self, images):
        return self.layers(images), None


def test_an_onnx_export_is_written_in_the_operator_set_asked_or_refused(tmp_path):
    """An older runtime needs an older operator set. torch's exporter writes 18 and newer,
    and asked for less it logs a failed conversion and writes 18: that file is refused,
    in one line that names what it can write, and nothing is left behind."""
    onnx = pytest.importorskip("onnx", reason="the export extra: pip install 'naonet[export]'")
    from naonet.errors import UserError
    from naonet.export import ExportSpec, export_model, onnx_opset, read_metadata

    network = LogitsPair().eval()
    out = tmp_path / "small.onnx"
    export_model(network, out, "onnx", ExportSpec(image_size=8, opset=19), {"arch": "x"})
    assert onnx_opset(onnx.load(str(out))) == 19 and read_metadata(out)["opset"] == 19
    out.unlink()
    newest = onnx.defs.onnx_opset_version()
    # torch 2.14's exporter writes 18 and newer: the lowest it wrote is named
    for asked, says in ((17, r"could not write this network in opset 17 \(it wrote (\d+)\); "
                             r"pick --opset \1 or newer \(up to " f"{newest}" r"\)"),
                        (newest + 1, re.escape(f"--opset {newest + 1} is not an ONNX operator "
                                               f"set this onnx {onnx.__version__} knows"))):
        with pytest.raises(UserError, match=says):
            export_model(network, out, "onnx", ExportSpec(image_size=8, opset=asked), {})
        assert list(tmp_path.iterdir()) == []


def test_opset_is_refused_for_torchscript(released_file, tmp_path, capsys):
    path, _ = released_file
    status, _, err = nao_in_process(capsys, "export", str(path), str(tmp_path / "m.ts"),
                                    "--opset", "18")
    assert status == 2 and err.strip() == (
        "nao export: error: --opset chooses an ONNX file's operator set; a TorchScript file "
        "has none: drop --opset, or write .onnx")


def test_export_hands_back_the_network_in_the_modes_its_parts_were_in(tmp_path):
    """The caller's network came back with every part in training mode: a BatchNorm the
    caller had frozen (eval mode inside a training network) started updating its
    statistics again."""
    network = LogitsPair().train()
    network.layers[1].eval()  # frozen statistics
    from naonet.export import ExportSpec, export_model

    export_model(network, tmp_path / "small.ts", "torchscript", ExportSpec(image_size=8), {})
    assert network.training and not network.layers[1].training
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        exported = torch.jit.load(str(tmp_path / "small.ts"))
    assert not any(part.training for part in exported.modules())  # evaluation mode, whole
    assert all(part.training for index, part in enumerate(network.layers) if index != 1)


def test_an_export_carries_no_auxiliary_head(tmp_path):
    """The evaluation forward never runs the auxiliary head, but a TorchScript export kept
    its weights: 1,572,384 parameters in a file of a 1,151,254-parameter network (over a
    --max-params of 1,500,000). The file holds the network's count, auxiliary head
    excluded, and gives its logits; the caller's network keeps its head."""
    from naonet.export import ExportSpec, export_model
    from naonet.models import count_parameters
    from naonet.models.networks import NetworkConfig, build_network
    from naonet.spaces import named_architecture

    network = build_network(named_architecture("naonet-v2"), NetworkConfig(
        channels=8, layers=1, num_classes=10, aux_head=True)).eval()
    out = tmp_path / "net.ts"
    export_model(network, out, "torchscript", ExportSpec(image_size=32), {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.jit.load(str(out))
    assert sum(p.numel() for p in exported.parameters()) == count_parameters(network)
    assert count_parameters(network, include_aux=True) > count_parameters(network)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # float32 on both sides, summed in the same order or close to
        expected = network(images)[0]
        assert torch.allclose(exported(images), expected, rtol=1e-4,
                              atol=1e-4 * expected.abs().max().item())
    assert hasattr(network, "aux_head")
