"""``python -m fedrl_lightning report``: PNG figures of one or more runs, with matplotlib.

One run's figures go to ``RUN/report/``; those of several runs, overlaid, go to the first
run's ``report/compare/``, so that comparing never overwrites a run's own report; ``--out``
puts them elsewhere. Each file is rendered in memory and then written atomically, and the
command prints one line per file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from jsonargparse.typing import PositiveInt

from fedrl_lightning.cli.commands.parser import CommandParser
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.extras import missing_extra
from fedrl_lightning.run.outputs import Outputs, check_output
from fedrl_lightning.run.run_folder import RunFolder
from fedrl_lightning.run.run_record import RunRecord, read_run

__all__ = ["DESCRIPTION", "REPORT_FOLDER", "build_parser", "output_folder", "run"]

DESCRIPTION = "Plot runs: learning curves, per-agent heatmaps, failures and traffic, as PNG."
REPORT_FOLDER = "report"
"""The sub-folder of a run that its report goes to."""
COMPARE_FOLDER = "compare"
"""The sub-folder of the first run's report that a report of several runs goes to."""


def build_parser(prog: str) -> CommandParser:
    """The ``report`` command's options."""
    parser = CommandParser(prog, DESCRIPTION)
    parser.add_argument(
        "runs", type=str, nargs="+", help="Run folders to plot, such as lightning_logs/version_0."
    )
    parser.add_argument(
        "--out",
        type=str | None,
        default=None,
        help=(
            "Folder for the PNGs (created if missing). Default: RUN/report/ for one run, and "
            "the first run's report/compare/ for several."
        ),
    )
    parser.add_argument(
        "--labels",
        type=str,
        nargs="+",
        default=None,
        help=(
            "One label per run, in order, for the legends. Default: each run's strategy, "
            "learner and seed from its config.yaml, keeping only what differs between the runs."
        ),
    )
    parser.add_argument(
        "--x",
        type=Literal["rounds", "env_steps"],
        default="rounds",
        help="The x axis of the learning curve and the traffic: rounds or environment steps.",
    )
    parser.add_argument(
        "--dpi", type=PositiveInt, default=100, help="Pixels per inch; figures are 10 inches wide."
    )
    return parser


def output_folder(runs: list[RunRecord], out: str | None) -> Path:
    """Where the figures of ``runs`` go: ``out``, or the default described in the module."""
    if out is not None:
        return Path(out)
    report = runs[0].path / REPORT_FOLDER
    return report if len(runs) == 1 else report / COMPARE_FOLDER


def run(args: list[str], prog: str) -> None:
    """Read the runs, draw their figures and write them as PNG files."""
    options = build_parser(prog).parse_args(args)
    runs = [read_run(path) for path in options.runs]
    if options.labels is not None and len(options.labels) != len(runs):
        raise ConfigError(
            f"--labels: {len(options.labels)} labels for {len(runs)} runs; give one per run"
        )
    try:
        from fedrl_lightning.cli.reporting.figures import draw_report, png_bytes
    except ImportError as err:
        raise missing_extra("report", "matplotlib", "plot", reason=str(err)) from None
    from fedrl_lightning.cli.reporting.series import run_labels

    labels = list(options.labels) if options.labels is not None else run_labels(runs)
    folder = output_folder(runs, options.out)
    where = "--out" if options.out is not None else "run folder"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{where} {folder}: cannot create it (a file, not a folder)")
    pngs = {
        folder / f"{name}.png": png_bytes(figure, options.dpi)
        for name, figure in draw_report(runs, labels, options.x).items()
    }
    default = output_folder(runs, None)
    inputs = [path for run in runs for path in _read_files(run.path)]
    for path in pngs:
        check_output(path, where, inputs=inputs, own=[default / path.name])
    with Outputs() as outputs:
        try:
            outputs.make_folder(folder)
        except OSError as err:
            raise ConfigError(f"{where} {folder}: cannot create it ({err.strerror})") from None
        for path, data in pngs.items():
            try:
                outputs.write_bytes(data, path)
            except OSError as err:
                raise ConfigError(
                    f"{where} {folder}: cannot write {path.name} ({err.strerror})"
                ) from None
    for path in pngs:
        print(path)


def _read_files(run: Path) -> list[Path]:
    """The files of run folder ``run`` that ``report`` reads."""
    folder = RunFolder(run)
    return [folder.metrics, folder.config, folder.agents_table]
