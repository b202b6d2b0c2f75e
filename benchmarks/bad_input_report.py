"""How the command line takes bad input: the tests' catalogue and fuzzing, counted.

Usage::

    python benchmarks/bad_input_report.py [--no-write]

Runs every case of ``tests/bad_inputs.py`` (``fit``'s, and those of the subcommands
``evaluate``, ``report`` and ``export``) in this process against a folder holding a
finished run, and the CLI fuzz tests' draws (``tests/test_cli_fuzz.py``), and counts per
category how many end in a traceback, in another exit code than 2 or more than one stderr
line, or change the run folder (a hash of every path, mode and byte before and after).
The table and the fuzzing counts are written to ``benchmarks/results/bad_input.json``, from
which ``benchmarks/render_figures.py`` makes the docs' table.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import sys
import tempfile
import traceback
from pathlib import Path

from protocol import TableResults

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from bad_inputs import CASES, COMMAND_CASES, folder_digest, write_input_files  # noqa: E402

from fedrl_lightning.cli.app import main  # noqa: E402

TINY = str(TESTS / "configs" / "tiny.yaml")


def run(args: list[str]) -> tuple[int | None, str]:
    """``main(args)``: its exit code (``None`` for a traceback) and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(args)
        except BaseException:  # what would be a traceback on the command line
            traceback.print_exc()
            code = None
    return code, stderr.getvalue()


def catalogue(folder: Path) -> dict[str, collections.Counter]:
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    fit_cases = [
        (category, ["fit", *([] if "--config" in args else ["--config", TINY]), *args], names)
        for category, args, names in CASES
    ]
    for category, command, names in [*fit_cases, *COMMAND_CASES]:
        before = folder_digest(folder)
        code, stderr = run(command)
        tally = counts[category]
        tally["cases"] += 1
        tally["traceback"] += code is None or "Traceback" in stderr
        tally["not one line, exit 2"] += code != 2 or len(stderr.splitlines()) != 1
        tally["names it"] += names in stderr
        tally["changed the run folder"] += folder_digest(folder) != before
    return counts


def fuzz() -> collections.Counter:
    import test_cli_fuzz

    outcomes: collections.Counter = collections.Counter()
    check = test_cli_fuzz.check_outcome

    def counted(code: int, stderr: str, runs: list) -> None:
        outcomes["draws"] += 1
        outcomes["finished runs" if code == 0 else "refused in one line"] += 1
        check(code, stderr, runs)

    test_cli_fuzz.check_outcome = counted
    test_cli_fuzz.test_wrong_flags_end_in_a_run_or_one_line()
    test_cli_fuzz.test_wrong_yaml_ends_in_a_run_or_one_line()
    return outcomes


def fuzz_finished_run() -> collections.Counter:
    """The fuzz dimensions that start from a finished run: outputs, loggers, damaged files."""
    import test_cli_fuzz

    outcomes: collections.Counter = collections.Counter()
    check = test_cli_fuzz.check_refused_and_unchanged

    def counted(
        code: int, stderr: str, folder: Path, digest: str, may_finish: bool = False
    ) -> None:
        outcomes["draws"] += 1
        outcomes["finished" if code == 0 else "refused in one line"] += 1
        check(code, stderr, folder, digest, may_finish)

    test_cli_fuzz.check_refused_and_unchanged = counted
    with tempfile.TemporaryDirectory() as workdir:
        code, stderr, _ = test_cli_fuzz.run_in_folder(
            workdir, ["fit", "--config", str(test_cli_fuzz.FUZZ_CONFIG)]
        )
        assert code == 0, stderr
        for test in (
            test_cli_fuzz.test_outputs_over_a_runs_own_files_are_refused,
            test_cli_fuzz.test_loggers_end_in_a_run_or_one_line_and_spare_the_run,
            test_cli_fuzz.test_damaged_checkpoints_end_in_a_result_or_one_line,
        ):
            test(fuzz_run=Path(workdir))
    return outcomes


def main_report() -> None:
    columns = ["cases", "traceback", "not one line, exit 2", "names it", "changed the run folder"]
    table = TableResults(
        "bad_input",
        "Bad input: the catalogue and fuzzing",
        "python benchmarks/bad_input_report.py",
        ["category", *columns],
    )
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        os.chdir(folder)
        try:
            assert run(["fit", "--config", TINY])[0] == 0
            write_input_files(folder)
            counts = catalogue(folder)
        finally:
            os.chdir(cwd)
    print("| category | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    total: collections.Counter = collections.Counter()
    for category, tally in counts.items():
        total.update(tally)
        table.add_row(category, *(tally[c] for c in columns))
        print(f"| {category} | " + " | ".join(str(tally[c]) for c in columns) + " |")
    table.add_row(f"all {len(counts)} categories", *(total[c] for c in columns))
    figures = " | ".join(f"**{total[c]}**" for c in columns)
    print(f"| **all {len(counts)} categories** | {figures} |")
    outcomes = fuzz()
    table.add_note(
        f"Fuzzing: {outcomes['draws']} draws, {outcomes['finished runs']} finished runs, "
        f"{outcomes['refused in one line']} refused in one line, 0 tracebacks."
    )
    print(table.results["notes"][-1])
    outcomes = fuzz_finished_run()
    table.add_note(
        f"Fuzzing from a finished run (outputs over its files, loggers, damaged checkpoints): "
        f"{outcomes['draws']} draws, {outcomes['finished']} finished, "
        f"{outcomes['refused in one line']} refused in one line, 0 tracebacks, "
        "the run unchanged by every draw."
    )
    print(table.results["notes"][-1])
    if "--no-write" not in sys.argv:
        print(f"wrote {table.write(totals=True)}")


if __name__ == "__main__":
    main_report()
