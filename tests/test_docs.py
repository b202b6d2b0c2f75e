"""The docs: the Sphinx site builds without a warning, and every block in it is checked.

Every fenced block of the README and of ``docs/`` is one of:

- ``bash``: each command is checked. ``python -m fedrl_lightning ...`` and ``fedrl ...`` go
  through the command's own parser (``fit`` with ``--print_config``, the other subcommands with
  their ``build_parser``), so an option that does not exist fails here; ``pip install`` must
  name extras that exist; ``python benchmarks/X.py`` and ``pytest tests/...`` files that exist.
- ``python``: run in an empty folder, with ``FederatedTrainer`` shrunk to one tiny round; a
  ``text`` block right after it (nothing but blank lines between) is what it prints. A block
  whose marker names another test is run there, and only compiled here.
- ``yaml``: parsed; a config fragment (``trainer``, ``model``, ``data``) also goes through
  ``fit --config FILE --print_config``.
- ``text``: shown, not run: output, folder trees, transcripts. A transcript under the marker
  ``<!-- tests/test_docs.py runs the next block in an empty folder -->`` is run: each
  ``$ python -m fedrl_lightning ...`` line must print the ``error:`` line after it.
- a MyST directive (``{toctree}``, ``{eval-rst}``): built by Sphinx.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from doc_blocks import DOCS, README, ROOT, Block, all_blocks, blocks, doc_files

import fedrl_lightning
from fedrl_lightning import FederatedTrainer
from fedrl_lightning.cli.app import main
from fedrl_lightning.cli.commands import COMMANDS, command_module

sys.path.insert(0, str(ROOT / "benchmarks"))

ALL_BLOCKS = all_blocks()
LANGUAGES = {"bash", "python", "yaml", "text"}
RUN_HERE = "<!-- tests/test_docs.py runs the next block in an empty folder"
PROG = "python -m fedrl_lightning"
EXTRAS = set(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
)


def of(lang: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.lang == lang]


def ids(found: list[Block]) -> list[str]:
    return [b.where for b in found]


def run_main(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """``main(args)`` in ``cwd``: the exit code, stdout and stderr."""
    previous = os.getcwd()
    os.chdir(cwd)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(args)
    finally:
        os.chdir(previous)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def workdir(tmp_path):
    """An empty folder where the docs' relative paths resolve: ``configs/`` and an experiment."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    shutil.copy(ROOT / "configs" / "default.yaml", tmp_path / "my_experiment.yaml")
    return tmp_path


# --- the site ---------------------------------------------------------------------------------


def test_the_site_builds_without_a_warning(tmp_path):
    from sphinx.cmd.build import build_main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = build_main(["-W", "-q", "-b", "html", str(DOCS), str(tmp_path / "html")])
    assert code == 0, stderr.getvalue()
    assert (tmp_path / "html" / "api.html").is_file()
    assert (tmp_path / "html" / "figures" / "index.html").is_file()


def test_every_page_is_in_the_site():
    """Sphinx -W refuses a page outside every toctree; this names the page sooner."""
    pages = {p.relative_to(DOCS).with_suffix("").as_posix() for p in doc_files() if p != README}
    toctrees = "\n".join(b.text for b in ALL_BLOCKS if b.lang == "{toctree}")
    listed = {line.strip() for line in toctrees.splitlines() if line.strip()}
    globbed = {page for page in pages if page.startswith("figures/") and "figures/*" in listed}
    assert pages - listed - globbed == {"index"}


def test_readme_is_short_and_keeps_the_generated_block():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    import render_figures

    assert render_figures.START in text and render_figures.END in text


def test_ci_runs_the_readme_s_test_command():
    command = next(b for b in blocks(README) if '-e ".[dev]"' in b.text).text.strip()
    assert command in (ROOT / ".ci" / "run").read_text()


TYPED = re.compile(
    r"\b\d+(?:\.\d+)?\s?(?:ms|µs|s|sec|min|minutes|seconds|KB|kB|MB)\b"  # timings and sizes
    r"|\b\d+(?:[.–-]\d+)?\s?[x×] (?:faster|slower)"  # speed-ups
)


WRITTEN = [p for p in doc_files() if p.parent != DOCS / "figures"]  # not generated


@pytest.mark.parametrize("path", WRITTEN, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_typed_measurements(path):
    """Timings, sizes and speed-ups come from results files, on the generated pages only."""
    text = path.read_text()
    import render_figures

    if render_figures.START in text:  # the README's generated summary
        before, rest = text.split(render_figures.START, 1)
        text = before + rest.split(render_figures.END, 1)[1]
    assert not TYPED.findall(text)


# --- every block ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=ids(ALL_BLOCKS))
def test_every_block_says_what_it_is(block):
    assert block.lang in LANGUAGES or block.lang.startswith("{"), (
        f"{block.where}: a block is bash, python, yaml or text (shown, not run)"
    )


def shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a bash block, continuation lines joined, redirections dropped."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        tokens = list(lexer)
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token in {";", "&&", "||", "|"}:
                commands.append(command)
                command = []
            elif token in {">", ">>", "2>"}:
                i += 1  # the file it writes
            else:
                command.append(token)
            i += 1
        commands.append(command)
    return [c for c in commands if c]


def check_cli(args: list[str], cwd: Path) -> None:
    """Parse ``python -m fedrl_lightning ARGS`` with the command's own parser."""
    if args and args[0] in COMMANDS:
        command_module(args[0]).build_parser(f"{PROG} {args[0]}").parse_args(args[1:])
        return
    assert args[:1] == ["fit"], f"not a subcommand: {args}"
    if "--ckpt_path" in args:  # a run the reader has; `last` resolves in an empty folder too
        i = args.index("--ckpt_path")
        if args[i + 1] != "last":
            args = args[:i] + args[i + 2 :]
    if not {"--help", "--print_config", "--model.help"} & set(args):
        args = [*args, "--print_config"]
    code, _, stderr = run_main(args, cwd)
    assert code == 0, stderr


PYTEST_OPTIONS_WITH_VALUES = {"-m", "-k", "-n", "-p", "--durations"}


def check_install(args: list[str], command: list[str]) -> None:
    """``pip install`` (or ``uv pip install``) with the constraints, of extras that exist."""
    assert args[0] == "install" and "-c" in args and "constraints.txt" in args, command
    for arg in args:
        if arg.startswith(".["):
            extras = set(arg[2:-1].split(","))
            assert extras <= EXTRAS, f"no such extra: {extras - EXTRAS}"


def check_command(command: list[str], cwd: Path) -> None:
    program, args = command[0], command[1:]
    python = program in {"python", "python3", ".venv/bin/python"}
    if python and args[:2] == ["-m", "fedrl_lightning"]:
        check_cli(args[2:], cwd)
    elif program == "fedrl":
        check_cli(args, cwd)
    elif program in {"pip", ".venv/bin/pip"}:
        check_install(args, command)
    elif program == ".venv/bin/uv":
        assert args[0] == "pip", command
        check_install(args[1:], command)
    elif python and args[:2] == ["-m", "venv"]:
        pass
    elif python and args[:2] == ["-m", "pytest"]:
        options = iter(args[2:])
        for arg in options:
            if arg in PYTEST_OPTIONS_WITH_VALUES:  # -m "not slow", -n 0: not a path
                next(options)
            elif not arg.startswith("-"):
                assert (ROOT / arg.split("::")[0]).exists(), arg
    elif python and args and args[0].startswith("benchmarks/"):
        assert (ROOT / args[0]).is_file(), args[0]
    elif program in {".venv/bin/ruff", ".venv/bin/mypy", ".venv/bin/sphinx-build"}:
        pass
    elif command[:2] == ["source", ".venv/bin/activate"] or command[:2] == ["ray", "start"]:
        pass
    else:
        raise AssertionError(f"a command this test does not know: {shlex.join(command)}")


BASH = of("bash")


@pytest.mark.parametrize("block", BASH, ids=ids(BASH))
def test_shell_commands_parse(block, workdir):
    for command in shell_commands(block.text):
        check_command(command, workdir)


def test_an_option_that_does_not_exist_fails_the_parse(workdir):
    with pytest.raises(AssertionError, match="unrecognized arguments"):
        check_command(
            ["python", "-m", "fedrl_lightning", "fit", "--trainer.num_roundz", "3"], workdir
        )
    with pytest.raises(Exception, match="--episodez"):
        check_command(["fedrl", "evaluate", "--episodez", "3"], workdir)


PYTHON = of("python")


def output_after(block: Block) -> str | None:
    """The text block right after ``block`` on its page: what ``block`` prints."""
    page = blocks(block.path)
    following = page[page.index(block) + 1 :]
    if not following or following[0].lang != "text":
        return None
    lines = block.path.read_text().splitlines()
    closing = block.line + len(block.text.splitlines())  # the closing fence, 0-based
    between = lines[closing + 1 : following[0].line - 1]
    return following[0].text if all(not line.strip() for line in between) else None


@pytest.mark.parametrize("block", PYTHON, ids=ids(PYTHON))
def test_python_blocks_run(block, tmp_path, monkeypatch, capsys):
    code = compile(block.text, block.where, "exec")
    if block.marker is not None and "tests/" in block.marker:
        test_file = block.marker.split("tests/", 1)[1].split()[0]
        assert (ROOT / "tests" / test_file).is_file(), block.marker
        return  # that test runs it, in the folder it needs

    class TinyTrainer(FederatedTrainer):
        def __init__(self, **kwargs: object) -> None:
            kwargs |= {
                "num_rounds": 1,
                "episodes_per_round": 1,
                "eval_episodes": 1,
                "default_root_dir": str(tmp_path),
                "enable_progress_bar": False,
            }
            super().__init__(**kwargs)

    monkeypatch.setattr(fedrl_lightning, "FederatedTrainer", TinyTrainer)
    monkeypatch.chdir(tmp_path)
    exec(code, {"__name__": "__main__"})
    expected = output_after(block)
    if expected is not None:
        assert capsys.readouterr().out == expected


def test_a_python_block_s_output_is_checked():
    assert any(output_after(block) is not None for block in PYTHON)


YAML = of("yaml")
SECTIONS = {"seed_everything", "trainer", "model", "data"}


@pytest.mark.parametrize("block", YAML, ids=ids(YAML))
def test_yaml_blocks_are_configs(block, workdir):
    config = yaml.safe_load(block.text)
    assert isinstance(config, dict) and set(config) <= SECTIONS, block.where
    (workdir / "fragment.yaml").write_text(block.text)
    code, _, stderr = run_main(["fit", "--config", "fragment.yaml", "--print_config"], workdir)
    assert code == 0, stderr


def transcripts() -> list[tuple[str, str, str]]:
    """(where, command, error line) of every transcript marked to run here."""
    found = []
    for block in ALL_BLOCKS:
        if block.marker is None or not block.marker.startswith(RUN_HERE):
            continue
        assert block.lang == "text", block.where
        lines = block.text.splitlines()
        for command, error in zip(lines, lines[1:], strict=False):
            if command.startswith(f"$ {PROG} "):
                assert error.startswith("error: "), f"{block.where}: {error}"
                found.append((block.where, command.removeprefix(f"$ {PROG} "), error))
    return found


TRANSCRIPTS = transcripts()


@pytest.mark.parametrize(
    "where, command, error", TRANSCRIPTS, ids=[f"{w}: {c}" for w, c, _ in TRANSCRIPTS]
)
def test_transcripts_print_what_the_docs_say(where, command, error, tmp_path):
    code, _, stderr = run_main(shlex.split(command), tmp_path)
    assert stderr == error + "\n", where
    assert code in (1, 2)
    if code == 2:  # bad input: no run folder
        assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_default_fit_prints_what_the_docs_show(tmp_path):
    """The lines of "What you see", in the README and on the getting-started page."""
    import check_figures

    shown = {
        line
        for path in (README, DOCS / "getting-started.md")
        for block in blocks(path)
        if block.lang == "text"
        for line in block.text.splitlines()
        if line.startswith(("round 4", "round 5", "Final eval_reward", "Finished ", "Run folder"))
    }
    assert any(line.startswith("Final eval_reward") for line in shown)
    code, stdout, stderr = run_main(["fit"], tmp_path)
    assert code == 0, stderr
    printed = stdout.splitlines()
    missing = {
        line
        for line in shown
        if not any(re.fullmatch(re.escape(line).replace(r"\.\.\.", r"[\d.]+"), p) for p in printed)
    }
    if missing and check_figures.machine_kind() not in check_figures.read_fingerprints():
        pytest.skip(f"another kind of machine, whose floats differ: {sorted(missing)}")
    assert not missing, stdout
