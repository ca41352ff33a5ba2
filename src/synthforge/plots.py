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


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write (atomically, no timestamp in the metadata) and close a figure."""
    fig.tight_layout()
    with io.atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


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
    _save(plt, fig, path)


def card_figures(facts: dict, tokens, folder: Path) -> dict[str, Path]:
    """The dataset card's PNGs: categories per split, token lengths, tool usage, quality scores."""
    plt = _pyplot()
    out = {}

    def save(fig, name: str) -> None:
        out[name] = _save(plt, fig, Path(folder) / f"{name}.png")

    splits = list(facts["categories"])
    cats = sorted({c for part in facts["categories"].values() for c in part})
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(cats) + 1.5), dpi=100)
    left = [0] * len(cats)
    for split, color in zip(splits, ("#2f6fdf", "#f0a030", "#5ab05a")):
        counts = [facts["categories"][split].get(c, 0) for c in cats]
        ax.barh(cats, counts, left=left, label=split, color=color)
        left = [a + b for a, b in zip(left, counts)]
    ax.set(xlabel="rows", title="examples per category")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save(fig, "categories")

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.hist(tokens, bins=40, color="#2f6fdf")
    ax.set(xlabel="tokens under the model's chat template", ylabel="rows", title="token lengths")
    save(fig, "tokens")

    tools = facts["tools"]
    fig, ax = plt.subplots(figsize=(8, 0.3 * max(len(tools), 1) + 1.5), dpi=100)
    ax.barh(list(tools)[::-1], list(tools.values())[::-1], color="#2f6fdf")
    ax.set(xlabel="calls", title="tool usage")
    save(fig, "tools")

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.hist(facts["scores"], bins=[1 + 0.25 * i for i in range(17)], color="#2f6fdf")
    ax.set(xlabel="mean quality score (1-5)", ylabel="rows", title="quality scores")
    save(fig, "scores")
    return out
