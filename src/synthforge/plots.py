"""PNG figures for reports (matplotlib, headless, imported only when a figure is drawn).

    score_figure(bins, before, after, dimensions, Path("reports/enhance/scores.png"), title="...")
"""

from __future__ import annotations

from pathlib import Path

from . import io


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("matplotlib is needed for the PNG reports: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_figure(bins: list[float], before: list[int], after: list[int], dimensions: dict[str, dict],
                 path: Path, title: str) -> None:
    """Left: histogram of row scores before and after. Right: mean per dimension of the enhanced rows."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    width = 0.11
    left.bar([b - width / 2 for b in bins], before, width=width, label="before", color="#b0b7c3")
    left.bar([b + width / 2 for b in bins], after, width=width, label="after", color="#2f6fdf")
    left.set(xlabel="mean score of a row (1-5)", ylabel="rows", title="all rows")
    left.legend(loc="upper left")
    names = list(dimensions)
    ys = range(len(names))
    right.barh([y + 0.2 for y in ys], [dimensions[n]["before"] for n in names], height=0.4, color="#b0b7c3")
    right.barh([y - 0.2 for y in ys], [dimensions[n]["after"] for n in names], height=0.4, color="#2f6fdf")
    right.set_yticks(list(ys), names)
    right.set(xlim=(0, 5), xlabel="mean score", title="enhanced rows, per dimension")
    fig.suptitle(title)
    fig.tight_layout()
    with io.atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", metadata={"Software": None})
    plt.close(fig)
