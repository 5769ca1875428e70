"""Plots for planning and post-mortems: vote rounds (the paper's figure 8), k_min against steps, and a solve's
decomposition tree.

Each function writes a PNG and returns the numbers it drew, so tests and reports can use them
without reading the image. matplotlib is imported inside the functions (and only its object API
with the Agg canvas, never pyplot's global state), so ``import maker`` never imports it.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from maker.errors import ConfigError, MakerError
from maker.journal import JournalReader
from maker.scaling import k_min

__all__ = ["VoteRounds", "plot_kmin", "plot_tree", "plot_vote_rounds"]

PathLike = str | os.PathLike[str]
DEFAULT_PS = (0.6, 0.8, 0.9, 0.99, 0.9978)
DEFAULT_S_RANGE = (10, 10**8)
PAPER_STEPS = 2**20 - 1  # the paper's 20-disk run, marked on the k_min plot


def _figure() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MakerError("plots need matplotlib: pip install 'maker-engine[plots]'") from None
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: figure.savefig then renders with Agg
    return figure, figure.add_subplot()


def _save(figure: Any, out_png: PathLike) -> None:
    path = Path(out_png)
    try:
        figure.savefig(path, dpi=120, format="png")
    except OSError as exc:
        raise MakerError(f"cannot write plot {str(path)!r}: {exc.strerror or exc}") from None


class VoteRounds(NamedTuple):
    """``undecided[r]``: steps still undecided after voting round r (``undecided[0]`` = all steps)."""

    steps: int
    undecided: list[int]

    @property
    def rounds(self) -> list[int]:
        return list(range(len(self.undecided)))


def vote_rounds(journal_path: PathLike) -> VoteRounds:
    """Count undecided steps after each round from a journal's per-step ``"rounds"`` field."""
    per_step = Counter(int(r.get("rounds", 1)) for r in JournalReader(journal_path).records())
    most = max(per_step, default=0)
    # A step decided in round r is undecided after rounds 0 .. r-1.
    undecided = [sum(n for r, n in per_step.items() if r > after) for after in range(most + 1)]
    return VoteRounds(sum(per_step.values()), undecided)


def plot_vote_rounds(journal_path: PathLike, out_png: PathLike) -> VoteRounds:
    """The paper's figure 8: undecided steps after each voting round, on a log y axis.

    Round 1 draws the first k samples of every step; a step that needed more rounds was not
    unanimous. Zero counts cannot sit on a log axis, so the curve stops at the last nonzero one.
    """
    data = vote_rounds(journal_path)
    if data.steps == 0:
        raise ConfigError(f"journal {str(journal_path)!r} has no decided steps to plot")
    shown = [(r, n) for r, n in enumerate(data.undecided) if n > 0]
    figure, axes = _figure()
    axes.plot([r for r, _ in shown], [n for _, n in shown], marker="o")
    axes.set(yscale="log", xlabel="voting round", ylabel="undecided steps",
             title=f"Undecided steps after each voting round ({data.steps:,} steps)")
    from matplotlib.ticker import MaxNLocator  # matplotlib is loaded by now (_figure)

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(-0.3, max(1, len(data.undecided) - 1) + 0.3)
    axes.grid(True, which="both", alpha=0.3)
    _save(figure, out_png)
    return data


def _s_grid(s_range: tuple[float, float], points: int = 200) -> list[int]:
    low, high = int(s_range[0]), int(s_range[1])
    if not 1 <= low < high:
        raise ConfigError(f"s_range must be (low, high) with 1 <= low < high, got {s_range!r}")
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    return sorted({round(10 ** (math.log10(low) + i * step)) for i in range(points)})


def plot_kmin(
    out_png: PathLike, ps: Iterable[float] = DEFAULT_PS, s_range: tuple[float, float] = DEFAULT_S_RANGE,
    target: float = 0.95, m: int = 1,
) -> dict[float, tuple[list[int], list[int]]]:
    """k_min against the number of steps s (log x axis), one line per p; returns p -> (s, k)."""
    ps = list(ps)
    if not ps:
        raise ConfigError("ps must name at least one p")
    grid = _s_grid(s_range)
    data = {p: (grid, [k_min(p, s, target, m) for s in grid]) for p in ps}
    figure, axes = _figure()
    for p, (s, k) in data.items():
        axes.step(s, k, where="post", label=f"p = {p:g}")
    if grid[0] <= PAPER_STEPS <= grid[-1]:
        axes.axvline(PAPER_STEPS, color="grey", linestyle=":", label="s = 2^20 - 1 (the paper)")
    title = f"Smallest margin k for P(task right) >= {target:g}" + ("" if m == 1 else f", m = {m}")
    axes.set(xscale="log", xlabel="steps s", ylabel="k_min", title=title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    _save(figure, out_png)
    return data



def plot_tree(tree: dict[str, Any], out_png: PathLike, *, title: str = "decomposition") -> int:
    """A solve's decomposition tree (``maker solve --picture``; ``Node.to_json``'s nested form): each node a box
    with its problem, result and how it was solved, parts below it, leaves in order. Returns the nodes drawn."""
    placed: list[tuple[dict[str, Any], float, int]] = []  # node, x, depth
    leaves = [0]

    def place(node: dict[str, Any], depth: int) -> float:
        parts = node.get("parts") or []
        if parts:
            x = sum(place(part, depth + 1) for part in parts) / len(parts)
        else:
            x, leaves[0] = leaves[0], leaves[0] + 1
        placed.append((node, x, depth))
        return x

    place(tree, 0)
    depth = max(d for _, _, d in placed)
    figure, ax = _figure()
    figure.set_size_inches(max(6.4, 1.6 * leaves[0]), max(3.0, 1.2 * (depth + 1)))
    where = {id(node): (x, -d) for node, x, d in placed}
    for node, x, d in placed:
        for part in node.get("parts") or []:
            px, py = where[id(part)]
            ax.plot([x, px], [-d, py], color="#999999", linewidth=0.8, zorder=1)
    for node, x, d in placed:
        how = node["split"] if not node.get("parts") else f"split {node['split']}"
        result = str(node["result"])
        text = f"{node['problem']}\n= {result if len(result) <= 24 else result[:21] + '...'}\n[{how}]"
        ax.text(x, -d, text, ha="center", va="center", fontsize=6, zorder=2,
                bbox={"boxstyle": "round", "facecolor": "#8ab6d6" if node.get("parts") else "#f2cc8f", "edgecolor": "none"})
    ax.set_xlim(-0.8, leaves[0] - 0.2)
    ax.set_ylim(-depth - 0.6, 0.6)
    ax.axis("off")
    ax.set_title(f"{title}: {len(placed)} nodes, {leaves[0]} solved whole (yellow), depth {depth}")
    _save(figure, out_png)
    return len(placed)
