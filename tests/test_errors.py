"""Bad input never crashes the interpreter: it raises a typed exception naming the file, tensor
or argument."""

from __future__ import annotations

import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import transformers  # noqa: F401
from helpers.tiny_models import TinyConfig, make_model, save_model  # noqa: E402

import axllm  # noqa: E402
from axllm.build import BuildOptions, build  # noqa: E402
from axllm.build.host_model_writer import read_host_model, write_host_model  # noqa: E402

LAYER0 = "qwen2_p8_l0_together.hostmodel"


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return save_model(
        make_model(TinyConfig("qwen2", num_layers=1, seed=5)), tmp_path_factory.mktemp("err") / "hf"
    )


@pytest.fixture(scope="module")
def built(hf_dir, tmp_path_factory):
    return build(
        hf_dir,
        tmp_path_factory.mktemp("errb"),
        BuildOptions(prefill_len=8, kv_cache_len=16, hidden_state_type="bf16"),
    )


@pytest.fixture
def sess(built):
    return axllm.InferenceSession(built / LAYER0)


def good_decode_feed(sess):
    return {i.name: np.zeros(i.shape, i.dtype) for i in sess.get_inputs(0)}


def test_missing_model_file(tmp_path):
    with pytest.raises(axllm.ModelLoadError, match="nothere.hostmodel.*cannot open"):
        axllm.InferenceSession(tmp_path / "nothere.hostmodel")


def test_empty_and_foreign_files(tmp_path):
    (tmp_path / "empty.hostmodel").write_bytes(b"")
    with pytest.raises(axllm.ModelLoadError, match="empty.hostmodel.*empty"):
        axllm.InferenceSession(tmp_path / "empty.hostmodel")
    (tmp_path / "x.hostmodel").write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(axllm.ModelLoadError, match="x.hostmodel.*bad magic"):
        axllm.InferenceSession(tmp_path / "x.hostmodel")


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(axllm.ModelLoadError, match="not a regular file"):
        axllm.InferenceSession(tmp_path)


@pytest.mark.parametrize("keep", [0.2, 0.6, 0.999])
def test_truncated_model_file(built, tmp_path, keep):
    data = (built / LAYER0).read_bytes()
    cut = tmp_path / "cut.hostmodel"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(axllm.ModelLoadError, match=r"cut.hostmodel: truncated: tensor '[\w.]+'"):
        axllm.InferenceSession(cut)


def test_truncated_header(built, tmp_path):
    cut = tmp_path / "head.hostmodel"
    cut.write_bytes((built / LAYER0).read_bytes()[:100])
    with pytest.raises(axllm.ModelLoadError, match="head.hostmodel: truncated or malformed header"):
        axllm.InferenceSession(cut)


def _rewrite(src, dst, *, drop=None, header_update=None):
    header, tensors = read_host_model(src)
    head = {k: (v[0] if len(v) == 1 else v) for k, v in header.items() if k != "axllm-hostmodel"}
    head.update(header_update or {})
    write_host_model(dst, head, [(k, np.array(v)) for k, v in tensors.items() if k != drop])
    return dst


def test_missing_tensor(built, tmp_path):
    bad = _rewrite(built / LAYER0, tmp_path / "m.hostmodel", drop="mlp.up_proj.weight")
    with pytest.raises(axllm.ModelLoadError, match="m.hostmodel: missing tensor 'mlp.up_proj.weight'"):
        axllm.InferenceSession(bad)


def test_tensor_shape_disagrees_with_header(built, tmp_path):
    bad = _rewrite(built / LAYER0, tmp_path / "s.hostmodel", header_update={"intermediate_size": 97})
    with pytest.raises(axllm.ModelLoadError, match="tensor 'mlp.gate_proj.weight' has shape"):
        axllm.InferenceSession(bad)


def test_unknown_architecture_in_model_file(built, tmp_path):
    bad = _rewrite(built / LAYER0, tmp_path / "a.hostmodel", header_update={"arch": "mamba"})
    with pytest.raises(axllm.UnsupportedModelError, match="a.hostmodel: architecture 'mamba'"):
        axllm.InferenceSession(bad)


def test_unknown_architecture_in_checkpoint(hf_dir, tmp_path):
    import shutil

    d = tmp_path / "neox"
    shutil.copytree(hf_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "gpt_neox"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(axllm.UnsupportedModelError, match=r"config.json: model_type 'gpt_neox'"):
        build(d, tmp_path / "out")


def test_checkpoint_missing_and_truncated_files(hf_dir, tmp_path):
    import shutil

    with pytest.raises(axllm.ModelLoadError, match="does not exist"):
        build(tmp_path / "nope", tmp_path / "o1")
    d = tmp_path / "noconfig"
    shutil.copytree(hf_dir, d)
    (d / "config.json").unlink()
    with pytest.raises(axllm.ModelLoadError, match="no config.json"):
        build(d, tmp_path / "o2")
    d = tmp_path / "trunc"
    shutil.copytree(hf_dir, d)
    st = d / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-1000])
    with pytest.raises(axllm.ModelLoadError, match="model.safetensors"):
        build(d, tmp_path / "o3")


def test_checkpoint_missing_tensor(hf_dir, tmp_path):
    import shutil

    from safetensors.numpy import load_file, save_file

    d = tmp_path / "missing"
    shutil.copytree(hf_dir, d)
    tensors = load_file(d / "model.safetensors")
    del tensors["model.layers.0.self_attn.k_proj.bias"]
    save_file(tensors, d / "model.safetensors")
    with pytest.raises(axllm.ModelLoadError, match="model.layers.0.self_attn.k_proj.bias"):
        build(d, tmp_path / "out")


def test_truncated_gguf(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(10))
    with pytest.raises(axllm.ModelLoadError, match="bad.gguf: cannot read GGUF"):
        build(bad, tmp_path / "out")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kv_cache_len": 4}, "kv_cache_len"),
        ({"prefill_len": 0}, "prefill_len"),
        ({"last_kv_cache_len": [99]}, "last_kv_cache_len 99"),
        ({"hidden_state_type": "int8"}, "hidden_state_type"),
        ({"weight_type": "s8"}, "weight_type"),
    ],
)
def test_bad_build_options(hf_dir, tmp_path, kwargs, match):
    opts = BuildOptions(**{"prefill_len": 8, "kv_cache_len": 16, **kwargs})
    with pytest.raises(ValueError, match=match):
        build(hf_dir, tmp_path / "out", opts)


def test_build_cli_reports_errors_without_traceback(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "axllm.build",
            "--input_path",
            str(tmp_path / "none"),
            "--output_path",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert "error:" in r.stderr and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_wrong_shape_in_feed(sess):
    feed = good_decode_feed(sess)
    feed["mask"] = np.zeros((1, 1, 5), ml_dtypes.bfloat16)
    with pytest.raises(
        ValueError, match=r"input 'mask' of shape_group 0 must have shape \[1,1,17\], got \[1,1,5\]"
    ):
        sess.run(None, feed)


def test_wrong_dtype_in_feed(sess):
    feed = good_decode_feed(sess)
    feed["input"] = np.zeros(feed["input"].shape, np.float32)
    with pytest.raises(TypeError, match="input 'input' of shape_group 0 must be bf16, got fp32"):
        sess.run(None, feed)
    feed = good_decode_feed(sess)
    feed["indices"] = np.zeros((1, 1), np.float64)
    with pytest.raises(TypeError, match="tensor 'indices': numpy dtype float64"):
        sess.run(None, feed)


def test_missing_unknown_and_misnamed_tensors(sess):
    feed = good_decode_feed(sess)
    del feed["K_cache"]
    with pytest.raises(ValueError, match="missing input 'K_cache'"):
        sess.run(None, feed)
    feed = good_decode_feed(sess)
    feed["attention_mask"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="'attention_mask', which is not an input"):
        sess.run(None, feed)
    with pytest.raises(ValueError, match="'logits' is not an output of shape_group 0"):
        sess.run(["logits"], good_decode_feed(sess))
    with pytest.raises(TypeError, match="numpy array"):
        sess.run(None, {**good_decode_feed(sess), "input": [[0.0]]})


@pytest.mark.parametrize("group", [-1, 3, 100])
def test_out_of_range_group(sess, group):
    with pytest.raises(ValueError, match=f"shape_group={group} is out of range"):
        sess.run(None, good_decode_feed(sess), shape_group=group)
    with pytest.raises(ValueError, match=f"shape_group={group} is out of range"):
        sess.get_inputs(shape_group=group)


def test_native_session_checks_groups_too(built):
    """The C++ core validates on its own; the Python checks are not the only guard."""
    raw = axllm._core.InferenceSession(str(built / LAYER0))
    with pytest.raises(ValueError, match="shape_group=7 is out of range"):
        raw.run(7, [], [])
    with pytest.raises(ValueError, match="missing input"):
        raw.run(0, [], [])


def test_backend_that_does_not_exist(built):
    with pytest.raises(ValueError, match="no usable provider"):
        axllm.InferenceSession(built / LAYER0, providers=["TensorrtExecutionProvider"])
    with pytest.raises(axllm.ModelLoadError, match="run on the host engine"):
        axllm.InferenceSession(built / LAYER0, providers=["AxEngineExecutionProvider"])


def test_corrupted_headers_never_crash(built, tmp_path):
    """Random byte flips in the header give a clean load or a typed error, never a crash."""
    data = bytearray((built / LAYER0).read_bytes())
    head_len = data.find(b"\nend\n")
    rng = np.random.default_rng(0)
    outcomes = set()
    for trial in range(150):
        mutated = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            pos = int(rng.integers(0, head_len))
            mutated[pos] = int(rng.choice(list(b"0123456789 ,-x\n")))
        p = tmp_path / f"f{trial}.hostmodel"
        p.write_bytes(mutated)
        try:
            axllm.InferenceSession(p)
            outcomes.add("loaded")
        except (axllm.ModelLoadError, ValueError) as e:
            assert str(p) in str(e) or "dtype" in str(e)
            outcomes.add(type(e).__name__)
        p.unlink()
    assert "ModelLoadError" in outcomes
