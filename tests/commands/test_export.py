"""``export``: TorchScript and ONNX files that act as ``module.act`` and the numpy actors do."""

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bad_inputs import folder_digest
from conftest import TINY_CONFIG, TINY_PPO_CONFIG, fit_one_agent, run_cli
from doc_blocks import docs_text, marked_block

from fedrl_lightning import Reinforce, load_module
from fedrl_lightning.cli.app import main
from fedrl_lightning.deploy.export_formats import METADATA_KEY

DOCS_MARKER = "<!-- tests/commands/test_export.py runs the next block"
RUN = Path("lightning_logs/version_0")

# torch 2.13 deprecates TorchScript (torch.jit.load included), but still runs it.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

# PPO with observation normalisation and two hidden layers; REINFORCE with neither.
LEARNERS = {
    "cartpole_ppo": (TINY_PPO_CONFIG, "CartPole-v1"),
    "pendulum_reinforce": (TINY_CONFIG, "Pendulum-v1"),
}

# The module's runs are fitted once, on one worker (pytest-xdist).
pytestmark = pytest.mark.xdist_group("export")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished tiny run of each learner, trained through the real command line."""
    folders = {}
    for name, (config, env_id) in LEARNERS.items():
        cwd = tmp_path_factory.mktemp(name)
        result = run_cli("fit", "--config", str(config), "--data.env_id", env_id, cwd=cwd)
        assert result.returncode == 0, result.stderr
        folders[name] = cwd
    return folders


def export(*args):
    """``python -m fedrl_lightning export ARGS`` in this process: exit code, stdout, stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["export", *args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def exported(runs):
    """For each learner: its module, and its TorchScript, ONNX and ONNX-with-noise files."""
    files = {}
    for name, cwd in runs.items():
        options = {
            "torchscript": ["--format", "torchscript"],
            "onnx": ["--format", "onnx"],
            "onnx_noise": ["--format", "onnx", "--noise_input", "true"],
        }
        paths = {}
        for kind, flags in options.items():
            out = cwd / f"policy_{kind}.{'pt' if kind == 'torchscript' else 'onnx'}"
            code, stdout, stderr = export("--default_root_dir", str(cwd), "--out", str(out), *flags)
            assert code == 0 and stderr == "", stderr
            assert stdout.startswith(f"Wrote {out} ") and stdout.count("\n") == 1
            paths[kind] = out
        module = load_module(cwd / RUN / "checkpoints" / "last.ckpt")
        files[name] = (module, paths)
    return files


def observations(module, count=1000, seed=0):
    """Observations of all scales, within and well beyond what the tiny runs saw.

    Large ones exercise the normalisation's clip, and push Gaussian means past the bounds.
    """
    rng = np.random.default_rng(seed)
    scales = rng.choice([0.3, 3.0, 30.0, 300.0], size=(count, 1))
    return (scales * rng.standard_normal((count, module.hparams.observation_dim))).astype(
        np.float32
    )


def assert_same_actions(got, want, discrete):
    assert got.dtype == want.dtype and got.shape == want.shape
    if discrete:
        assert np.array_equal(got, want)
    else:  # the same float32 arithmetic, summed in another order
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", LEARNERS)
def test_exported_files_act_as_module_act_deterministically(name, exported):
    module, paths = exported[name]
    discrete = not module.hparams.continuous
    obs = observations(module)
    want = module.act(obs, deterministic=True)
    if discrete:
        assert module.policy.normalizer is not None and len(module.policy.deeper) == 1
        assert 0 < want.mean() < 1  # both actions occur
    else:
        assert (np.abs(want) == 2).any() and (np.abs(want) < 2).any()  # some clipped, some not

    scripted = torch.jit.load(str(paths["torchscript"]))
    assert_same_actions(scripted(torch.from_numpy(obs)).numpy(), want, discrete)
    session = ort.InferenceSession(str(paths["onnx"]))
    assert_same_actions(session.run(None, {"observations": obs})[0], want, discrete)
    # The batch axis is dynamic: one observation, and an odd batch, work as well.
    for batch in (obs[:1], obs[:7]):
        got = session.run(None, {"observations": batch})[0]
        assert_same_actions(got, want[: len(batch)], discrete)
        assert_same_actions(scripted(torch.from_numpy(batch)).numpy(), want[: len(batch)], discrete)


@pytest.mark.parametrize("name", LEARNERS)
def test_given_noise_they_sample_as_the_numpy_actor(name, exported):
    module, paths = exported[name]
    discrete = not module.hparams.continuous
    actor = module.policy.actor()
    obs = observations(module, seed=1)
    noise = actor.noise(np.random.default_rng(2), len(obs))
    want = np.asarray(actor.env_action(actor.sample(obs, noise)))
    deterministic = module.act(obs, deterministic=True)
    assert not np.array_equal(want, deterministic)  # the noise matters

    scripted = torch.jit.load(str(paths["torchscript"]))
    got = scripted(torch.from_numpy(obs), torch.from_numpy(noise)).numpy()
    assert_same_actions(got, want.astype(got.dtype), discrete)
    zeros = torch.zeros_like(torch.from_numpy(noise))
    assert_same_actions(scripted(torch.from_numpy(obs), zeros).numpy(), deterministic, discrete)

    session = ort.InferenceSession(str(paths["onnx_noise"]))
    assert [i.name for i in session.get_inputs()] == ["observations", "noise"]
    got = session.run(None, {"observations": obs, "noise": noise})[0]
    assert_same_actions(got, want.astype(got.dtype), discrete)
    got = session.run(None, {"observations": obs, "noise": np.zeros_like(noise)})[0]
    assert_same_actions(got, deterministic, discrete)


@pytest.mark.parametrize("name", LEARNERS)
def test_the_files_describe_the_policy(name, exported, runs):
    module, paths = exported[name]
    _, env_id = LEARNERS[name]
    extra = {METADATA_KEY: ""}
    torch.jit.load(str(paths["torchscript"]), _extra_files=extra)
    described = json.loads(extra[METADATA_KEY])
    model = onnx.load(str(paths["onnx"]))
    assert json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY]) == described
    assert described["learner"] == type(module).__name__
    assert described["env_id"] == env_id and described["round"] == 3
    assert described["checkpoint"] == str(runs[name] / RUN / "checkpoints" / "last.ckpt")
    assert described["observation_dim"] == module.hparams.observation_dim
    assert described["normalizes_observations"] == (module.policy.normalizer is not None)
    if module.hparams.continuous:
        assert described["action"] == "continuous" and described["noise"] == "normal"
        assert (described["action_low"], described["action_high"]) == ([-2.0], [2.0])
    else:
        assert described["action"] == "discrete" and described["noise"] == "gumbel"
        assert described["num_actions"] == 2

    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", module.hparams.observation_dim]
    assert [o.name for o in model.graph.output] == ["actions"]


def test_the_summary_line_names_the_file_its_size_inputs_and_output(exported, runs, tmp_path):
    cwd = runs["cartpole_ppo"]
    out = tmp_path / "policy.onnx"
    out.write_text("an older file, replaced whole")
    code, stdout, _ = export("--default_root_dir", str(cwd), "--out", str(out), "--format", "onnx")
    assert code == 0
    size = out.stat().st_size
    assert stdout == (
        f"Wrote {out} (ONNX opset {onnx.load(str(out)).opset_import[0].version}, "
        f"{size / 1000:.1f} kB): observations float32 [batch, 4] -> actions int64 [batch]; "
        f"PPO policy from {cwd / RUN / 'checkpoints' / 'last.ckpt'}\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]  # no temporary file
    _, stdout, _ = export("--default_root_dir", str(cwd), "--out", str(tmp_path / "p.pt"))
    assert "noise float32 [batch, 2] (optional) -> actions int64 [batch]" in stdout


def test_opset_version_is_the_one_written(runs, tmp_path):
    out = tmp_path / "policy.onnx"
    root = ["--default_root_dir", str(runs["pendulum_reinforce"])]
    code, stdout, stderr = export(
        *root, "--out", str(out), "--format", "onnx", "--opset_version", "18"
    )
    assert code == 0, stderr
    assert "ONNX opset 18" in stdout and onnx.load(str(out)).opset_import[0].version == 18


def test_ckpt_path_takes_best_a_run_folder_or_a_file(runs, tmp_path):
    cwd = runs["pendulum_reinforce"]
    checkpoints = cwd / RUN / "checkpoints"
    for ckpt_path, used in (
        ("best", checkpoints / "best.ckpt"),
        (str(cwd / RUN), checkpoints / "last.ckpt"),
        (str(checkpoints / "round-0001.ckpt"), checkpoints / "round-0001.ckpt"),
    ):
        out = tmp_path / "policy.pt"
        code, stdout, stderr = export(
            "--default_root_dir", str(cwd), "--ckpt_path", ckpt_path, "--out", str(out)
        )
        assert code == 0, stderr
        assert stdout.rstrip().endswith(f"from {used}")
        extra = {METADATA_KEY: ""}
        torch.jit.load(str(out), _extra_files=extra)
        assert json.loads(extra[METADATA_KEY])["checkpoint"] == str(used)


def test_an_agents_checkpoint_exports_without_a_round_or_env_id(tmp_path):
    torch.manual_seed(0)
    path = fit_one_agent(tmp_path, Reinforce(hidden_dim=8).state_dict())
    out = tmp_path / "agent.pt"
    code, stdout, stderr = export("--ckpt_path", str(path), "--out", str(out))
    assert code == 0, stderr
    extra = {METADATA_KEY: ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    described = json.loads(extra[METADATA_KEY])
    assert described["round"] is None and described["env_id"] is None
    module = load_module(path)
    obs = observations(module)
    assert np.array_equal(scripted(torch.from_numpy(obs)).numpy(), module.act(obs, True))


def foreign_checkpoints(folder):
    """Files that are no checkpoint of a fedrl_lightning learner."""
    (folder / "notes.txt").write_text("not a checkpoint")
    torch.save(
        {"state_dict": {"weight": torch.zeros(3)}, "learner": "Reinforce"}, folder / "x.ckpt"
    )
    torch.save({"state_dict": {}, "learner": "Mystery"}, folder / "mystery.ckpt")


BAD_INPUTS = [
    (["--ckpt_path", "last"], "--ckpt_path last: no run in"),
    (["--ckpt_path", "missing.ckpt"], "--ckpt_path missing.ckpt: no such file"),
    (["--ckpt_path", "notes.txt"], "checkpoint notes.txt: not a readable checkpoint"),
    (["--ckpt_path", "x.ckpt"], "checkpoint x.ckpt: does not fit Reinforce"),
    (["--ckpt_path", "mystery.ckpt"], "checkpoint mystery.ckpt: its learner 'Mystery'"),
    (["--out", "no_folder/policy.pt"], "--out no_folder/policy.pt: no folder no_folder"),
    (["--out", "notes.txt/policy.pt"], "--out notes.txt/policy.pt: no folder notes.txt"),
    (["--out", "."], "--out .: a folder, not a file"),
    (["--format", "tflite"], "--format: expected one of torchscript, onnx, got 'tflite'"),
    (["--noise_input", "true"], "--noise_input applies to --format onnx"),
    (["--format", "onnx", "--opset_version", "12"], "--opset_version must be in [18, "),
    (["--format", "onnx", "--opset_version", "99"], "--opset_version must be in [18, "),
    (["--ckpt_path", "x.ckpt", "--format", "onnx"], "checkpoint x.ckpt: does not fit Reinforce"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path, monkeypatch):
    foreign_checkpoints(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = folder_digest(tmp_path)
    out = [] if "--out" in args else ["--out", "policy.out"]
    code, stdout, stderr = export(*out, *args)
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith(f"error: {message}"), stderr
    assert folder_digest(tmp_path) == before


def test_out_is_required(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = export("--format", "onnx")
    assert code == 2 and len(stderr.splitlines()) == 1 and "--out" in stderr


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_onnx_without_its_packages_names_the_extra(package, runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # how Python marks a module unimportable
    root = ["--default_root_dir", str(runs["cartpole_ppo"])]
    code, _, stderr = export(*root, "--out", str(tmp_path / "p.onnx"), "--format", "onnx")
    assert code == 2 and len(stderr.splitlines()) == 1
    assert stderr.startswith(f"error: --format onnx needs the {package} package, which is not")
    assert stderr.endswith(': pip install -c constraints.txt -e ".[export]"\n')
    assert list(tmp_path.iterdir()) == []


def test_the_docs_command_and_snippet_run_as_written(runs, monkeypatch):
    cwd = runs["cartpole_ppo"]
    command = re.search(r"python -m fedrl_lightning export ([^#\n]*)", docs_text())
    assert command is not None
    result = run_cli("export", *command.group(1).split(), cwd=cwd)  # a real process, as typed
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("Wrote policy.onnx (ONNX opset ")
    monkeypatch.chdir(cwd)
    namespace = {"__name__": "__main__"}
    block = marked_block(DOCS_MARKER, "python")
    exec(compile(block.text, block.where, "exec"), namespace)
    actions, obs = namespace["actions"], namespace["obs"]
    assert actions.dtype == np.int64 and actions.shape == (8,)
    module = load_module(cwd / RUN / "checkpoints" / "last.ckpt")
    assert np.array_equal(actions, module.act(namespace["envs"].reset(seed=0)[0], True))
    assert obs.shape == (8, 4)
