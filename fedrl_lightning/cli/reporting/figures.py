"""The report's figures, drawn with matplotlib's object API: no pyplot, no global state.

Each function takes run records and their labels and returns a
:class:`matplotlib.figure.Figure`; :func:`png_bytes` renders one. Several runs share each
figure: run ``i`` has colour ``Ci`` everywhere, and the marks of failed and Byzantine agents
keep their shape (``x`` and a triangle) whatever the run.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps, transforms
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, MaxNLocator

from fedrl_lightning.cli.reporting import series
from fedrl_lightning.cli.reporting.series import XAxis
from fedrl_lightning.run.run_record import RunRecord

__all__ = ["FIGURES", "agent_heatmap", "draw_report", "learning_curve", "png_bytes", "traffic"]

FIGURES = ("learning_curve", "agent_heatmap", "traffic")
"""The figures of a report, by the name of their file (``learning_curve.png``, ...)."""
MARKERS = {"failed": "x", "byzantine": "^"}
MARK_NAMES = {"failed": "failed agent", "byzantine": "Byzantine agent"}
X_LABELS = {"rounds": "round", "env_steps": "environment steps"}
WIDTH = 10.0  # inches, every figure
GREY = "0.35"


def draw_report(
    runs: Sequence[RunRecord], labels: Sequence[str], x: XAxis = "rounds"
) -> dict[str, Figure]:
    """Every figure of the report, by name (see :data:`FIGURES`).

    Args:
        runs: The runs, overlaid in one figure each (the heatmap has a panel per run).
        labels: One label per run, for legends and titles.
        x: The learning curve's and the traffic's x axis: rounds, or environment steps.

    Returns:
        The figures, keyed by the names of :data:`FIGURES`.
    """
    return {
        "learning_curve": learning_curve(runs, labels, x),
        "agent_heatmap": agent_heatmap(runs, labels),
        "traffic": traffic(runs, labels, x),
    }


def png_bytes(figure: Figure, dpi: int = 100) -> bytes:
    """``figure`` rendered as a PNG file's bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def learning_curve(runs: Sequence[RunRecord], labels: Sequence[str], x: XAxis) -> Figure:
    """The evaluation return (mean, worst agent, range over agents) and the training return.

    The top panel shows each run's mean evaluation return over its agents (solid), its worst
    agent (dashed) and the range of its agents' returns (band). Rounds with a failed or
    Byzantine agent get a mark at the bottom of that panel. The bottom panel shows the mean
    training return of the agents sampled in each round.
    """
    figure = Figure(figsize=(WIDTH, 6.5), layout="constrained")
    evaluation, training = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    lines, band_alpha = [], 0.2 if len(runs) == 1 else 0.1  # overlapping bands stay readable
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        colour, xs = f"C{i % 10}", series.x_values(run, x)
        low, high = series.agent_band(run)
        worst = run.column("eval_reward_min")
        style: dict[str, Any] = {"marker": "o", "markersize": 3} if len(xs) < 2 else {}
        evaluation.fill_between(xs, low, high, color=colour, alpha=band_alpha, linewidth=0)
        (line,) = evaluation.plot(
            xs, run.column("eval_reward"), color=colour, lw=1.8, label=label, **style
        )
        evaluation.plot(xs, low if np.isnan(worst).all() else worst, color=colour, ls="--", lw=0.9)
        training.plot(xs, run.column("train_reward"), color=colour, lw=1.3, label=label, **style)
        lines.append(line)
    kinds = _mark_rounds(evaluation, runs, x)
    evaluation.set(title="Evaluation return of the global policy", ylabel="return")
    training.set(title="Training return of the sampled agents", ylabel="return")
    _x_axis(training, x)
    if len(runs) == 1 and x == "rounds":
        _env_steps_axis(evaluation, runs[0])
    for axes in (evaluation, training):
        axes.grid(alpha=0.3)
    style_handles = [
        Line2D([], [], color=GREY, lw=1.8, label="mean over agents"),
        Line2D([], [], color=GREY, ls="--", lw=1, label="worst agent"),
        Patch(color=GREY, alpha=0.25, label="range over agents"),
        *(_mark_handle(kind, f"round with a {MARK_NAMES[kind]}") for kind in kinds),
    ]
    _legends(figure, runs, lines, labels, style_handles)
    _title(figure, runs, labels, "Learning curve")
    return figure


def agent_heatmap(runs: Sequence[RunRecord], labels: Sequence[str]) -> Figure:
    """Each agent's evaluation return in each round, one panel per run, on one colour scale.

    Grey cells are agents that the round did not evaluate. A cross marks an agent whose local
    fit failed in that round, a triangle a Byzantine agent that took part in it.
    """
    tables = [series.heatmap(run) for run in runs]
    sizes = [max(len(agents), 1) for agents, _ in tables]
    height = min(1.6 + 0.22 * sum(sizes) + 0.7 * len(runs), 16.0)
    figure = Figure(figsize=(WIDTH, height), layout="constrained")
    panels = figure.subplots(len(runs), 1, squeeze=False, sharex=True, height_ratios=sizes)[:, 0]
    values = np.concatenate([table.ravel() for _, table in tables])
    finite = values[np.isfinite(values)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    marked = []
    for panel, run, label, (agents, table) in zip(panels, runs, labels, tables, strict=True):
        mesh = panel.pcolormesh(
            _edges(run.rounds),
            np.arange(len(agents) + 1) - 0.5,
            np.ma.masked_invalid(table),
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
        )
        names = series.agent_names(run, agents)
        step = max(1, len(agents) // 20)
        panel.set_yticks(range(0, len(agents), step), names[::step], fontsize="small")
        panel.set_ylim(len(agents) - 0.5, -0.5)  # agent 0 on top
        panel.set(ylabel="agent", title=label if len(runs) > 1 else None)
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        cell = min(WIDTH * 60 / max(len(run.rounds), 1), 14.0)  # points, about
        for kind in series.MARK_KINDS:
            pairs = series.agent_marks(run, kind)
            if pairs:
                marked.append(kind)
                rows = [agents.index(agent) for _, agent in pairs]
                panel.scatter(
                    [r for r, _ in pairs], rows, s=max(cell * 0.8, 3.0) ** 2, **_mark_style(kind)
                )
    figure.colorbar(mesh, ax=panels, label="evaluation return", shrink=0.9)
    panels[-1].set_xlabel("round")
    if marked:
        handles = [_mark_handle(kind, MARK_NAMES[kind]) for kind in dict.fromkeys(marked)]
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    _title(figure, runs, labels, "Evaluation return per agent")
    return figure


def traffic(runs: Sequence[RunRecord], labels: Sequence[str], x: XAxis) -> Figure:
    """The bytes the server sent to and received from the agents, round by round."""
    figure = Figure(figsize=(WIDTH, 4.2), layout="constrained")
    axes = figure.subplots()
    largest = max(
        np.nanmax(np.r_[run.column("bytes_sent"), run.column("bytes_received"), 0.0])
        for run in runs
    )
    scale, unit = _bytes_unit(largest)
    lines = []
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        colour, xs = f"C{i % 10}", series.x_values(run, x)
        style: dict[str, Any] = {"marker": "o", "markersize": 3} if len(xs) < 2 else {}
        (line,) = axes.plot(
            xs, run.column("bytes_sent") / scale, color=colour, lw=1.6, label=label, **style
        )
        axes.plot(xs, run.column("bytes_received") / scale, color=colour, ls="--", lw=1.2, **style)
        lines.append(line)
    kinds = _mark_rounds(axes, runs, x)
    axes.set(ylabel=f"{unit} per round")
    axes.set_ylim(0, 1.12 * largest / scale if largest > 0 else 1.0)  # the top line clear
    axes.grid(alpha=0.3)
    _x_axis(axes, x)
    style_handles = [
        Line2D([], [], color=GREY, lw=1.6, label="sent: global policy to sampled agents"),
        Line2D([], [], color=GREY, ls="--", lw=1.2, label="received: agents' checkpoints"),
        *(_mark_handle(kind, f"round with a {MARK_NAMES[kind]}") for kind in kinds),
    ]
    _legends(figure, runs, lines, labels, style_handles)
    _title(figure, runs, labels, "Traffic per round")
    return figure


def _mark_rounds(axes: Axes, runs: Sequence[RunRecord], x: XAxis) -> list[str]:
    """Mark the rounds with failed or Byzantine agents along the bottom of ``axes``.

    Each run and kind with marks gets its own row, in the run's colour.

    Returns:
        The kinds marked, in order.
    """
    along_bottom = transforms.blended_transform_factory(axes.transData, axes.transAxes)
    row, kinds = 0, []
    for i, run in enumerate(runs):
        xs = series.x_values(run, x)
        for kind in series.MARK_KINDS:
            at = np.isin(run.rounds, series.marked_rounds(run, kind))
            if at.any():
                y = np.full(int(at.sum()), 0.03 + 0.05 * row)
                axes.plot(
                    xs[at], y, ls="", transform=along_bottom, color=f"C{i % 10}",
                    marker=MARKERS[kind], markersize=6, markerfacecolor="none",
                )  # fmt: skip
                row += 1
                kinds.append(kind)
    return list(dict.fromkeys(kinds))


def _mark_style(kind: str) -> dict[str, object]:
    """How the heatmap draws a mark: a red cross, or a white triangle edged in black."""
    if kind == "failed":
        return {"marker": "x", "color": "tab:red", "linewidths": 1.5}
    return {"marker": "^", "facecolors": "white", "edgecolors": "black", "linewidths": 0.8}


def _mark_handle(kind: str, label: str) -> Line2D:
    """A legend entry for marks of ``kind``."""
    return Line2D(
        [], [], ls="", marker=MARKERS[kind], color=GREY, markerfacecolor="none", label=label
    )


def _legends(
    figure: Figure,
    runs: Sequence[RunRecord],
    lines: list[Line2D],
    labels: Sequence[str],
    style_handles: Sequence[Artist],
) -> None:
    """A legend of the runs (with several), and one of what the line styles and marks mean."""
    if len(runs) > 1:
        figure.legend(lines, labels, loc="outside right upper", title="run")
    figure.legend(handles=style_handles, loc="outside right lower", fontsize="small")


def _title(figure: Figure, runs: Sequence[RunRecord], labels: Sequence[str], what: str) -> None:
    """``what`` and the run's label, or the number of runs compared."""
    figure.suptitle(f"{what}: {labels[0]}" if len(runs) == 1 else f"{what}: {len(runs)} runs")


def _x_axis(axes: Axes, x: XAxis) -> None:
    """Label the x axis; steps read as 20k, 1.5M."""
    axes.set_xlabel(X_LABELS[x])
    if x == "env_steps":
        axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _env_steps_axis(axes: Axes, run: RunRecord) -> None:
    """A top axis that reads the rounds of ``run`` as the environment steps taken by then."""
    rounds, steps = run.rounds.astype(np.float64), run.column("env_steps")
    if len(rounds) < 2 or not np.all(np.diff(steps) > 0) or steps[0] <= 0:
        return  # no steps recorded, or not increasing: no one-to-one axis
    # Round 0 is no step at all; past the last round, steps go on at the last round's pace.
    pace = (steps[-1] - steps[-2]) / (rounds[-1] - rounds[-2])
    rounds = np.r_[0.0, rounds, rounds[-1] + 1e6]
    steps = np.r_[0.0, steps, steps[-1] + pace * 1e6]
    top = axes.secondary_xaxis(
        "top",
        # matplotlib types these functions' argument as any ArrayLike (strings included),
        # which numpy's interp refuses; matplotlib passes them numbers
        functions=(
            lambda r: np.interp(r, rounds, steps),  # type: ignore[arg-type]
            lambda s: np.interp(s, steps, rounds),  # type: ignore[arg-type]
        ),
    )
    top.set_xlabel("environment steps")
    top.xaxis.set_major_formatter(EngFormatter(sep=""))


def _edges(rounds: np.ndarray) -> np.ndarray:
    """The cell edges of the heatmap's columns: halfway between rounds, and half a round out."""
    centres = rounds.astype(np.float64)
    middles = (centres[:-1] + centres[1:]) / 2
    return np.concatenate([[centres[0] - 0.5], middles, [centres[-1] + 0.5]])


def _bytes_unit(largest: float) -> tuple[float, str]:
    """The unit that shows ``largest`` bytes best: B, kB, MB or GB (powers of 1000)."""
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if largest >= scale:
            return scale, unit
    return 1.0, "bytes"
