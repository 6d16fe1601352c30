"""Draw the ISSTAD stage diagram of the documentation: ``docs/_static/stages.png``.

Three rows: stage 1 (MAE on normal images), stage 2 (corruption, frozen encoder, restoration and pixel
classification) and inference (E, P -> S -> image score). Only matplotlib is needed::

    .venv/bin/python docs/scripts/stage_diagram.py            # writes docs/_static/stages.png
    .venv/bin/python docs/scripts/stage_diagram.py -o out.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUTPUT = Path(__file__).resolve().parents[1] / "_static" / "stages.png"

# Colours by role: data, trained module, frozen module, head, loss / score.
DATA = "#e8eef7"
TRAINED = "#ffd8a8"
FROZEN = "#cfd4da"
HEAD = "#b2f2bb"
LOSS = "#ffc9c9"
SCORE = "#d0bfff"
EDGE = "#343a40"

BOX_H = 7.0


def box(ax, x, y, w, text, colour, h=BOX_H, bold=False):
    """A rounded box centred at (x, y); returns its (left, right, bottom, top) edges."""
    patch = FancyBboxPatch(
        (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.25,rounding_size=0.8",
        linewidth=1.2, edgecolor=EDGE, facecolor=colour,
    )
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=10.5, weight="bold" if bold else "normal")
    return (x - w / 2, x + w / 2, y - h / 2, y + h / 2)


def arrow(ax, start, end, text=None, style="-|>", dashed=False, rad=0.0):
    """An arrow between two points, with an optional label above its middle."""
    patch = FancyArrowPatch(
        start, end, arrowstyle=style, mutation_scale=12, linewidth=1.3, color=EDGE,
        linestyle="--" if dashed else "-", connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2,
    )
    ax.add_patch(patch)
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 1.2, text, ha="center", va="bottom",
                fontsize=8, color="#495057")


def right(edges):
    return (edges[1], (edges[2] + edges[3]) / 2)


def left(edges):
    return (edges[0], (edges[2] + edges[3]) / 2)


def top(edges):
    return ((edges[0] + edges[1]) / 2, edges[3])


def bottom(edges):
    return ((edges[0] + edges[1]) / 2, edges[2])


def row_title(ax, y, title, subtitle):
    """A row title with its subtitle on the same line, above the row."""
    ax.text(1, y, title, ha="left", va="center", fontsize=13.5, weight="bold")
    ax.text(15, y, subtitle, ha="left", va="center", fontsize=10.5, color="#495057")


def separator(ax, y):
    ax.plot([0.5, 129.5], [y, y], color="#adb5bd", linewidth=0.8, linestyle=":")


def draw(path: Path) -> Path:
    """Draw the figure and save it to ``path``."""
    fig, ax = plt.subplots(figsize=(13, 10.4))
    ax.set_xlim(0, 130)
    ax.set_ylim(0, 104)
    ax.axis("off")

    # ---------------------------------------------------------------- stage 1
    row_title(ax, 100, "Stage 1", "masked autoencoder on normal images (stage1_epochs; paper: 120 epochs)")
    y = 91
    img = box(ax, 10, y, 17, "normal image I", DATA)
    mask = box(ax, 31, y, 17, "75 % of patches\nmasked", DATA)
    enc = box(ax, 52, y, 17, "ViT encoder\n(visible patches)", TRAINED, bold=True)
    dec = box(ax, 73, y, 17, "decoder\n+ mask tokens", TRAINED, bold=True)
    rch = box(ax, 94, y, 17, "reconstruction\nhead (RCH)", HEAD, bold=True)
    loss = box(ax, 116.5, y, 20, "MSE on the\nmasked patches\n(eq. 3)", LOSS)
    for a, b in ((img, mask), (mask, enc), (enc, dec), (dec, rch), (rch, loss)):
        arrow(ax, right(a), left(b))
    ax.text(94, y - 5, "pixel classifier head unused", ha="center", va="top", fontsize=9, color="#868e96",
            style="italic")
    separator(ax, 83)

    # ---------------------------------------------------------------- stage 2
    row_title(ax, 79.5, "Stage 2", "restore and classify corrupted images (max_epochs − stage1_epochs; paper: 200)")
    y = 62
    clean = box(ax, 10, y + 8.5, 17, "normal image I", DATA)
    corrupt = box(ax, 10, y - 8.5, 17, "PixelCorruption\n→ I_pl, labels L", DATA)
    enc = box(ax, 32, y, 16, "ViT encoder\n(frozen)", FROZEN, bold=True)
    dec = box(ax, 53, y, 17, "decoder blocks\n1 … n (trained)", TRAINED, bold=True)
    rch = box(ax, 79, y + 8.5, 23, "reconstruction\nhead → Î", HEAD, bold=True)
    pch = box(ax, 79, y - 8.5, 23, "pixel classifier head\n(every block) → P^[l]", HEAD, bold=True)
    rec_loss = box(ax, 114, y + 8.5, 26, "λ0·MSE + λ1·(1 − SSIM)\nÎ vs clean I (eq. 8-9)", LOSS)
    cls_loss = box(ax, 114, y - 8.5, 26, "λ2·mean_l CE(P^[l], L)\nvs labels L (eq. 10-11)", LOSS)
    arrow(ax, bottom(clean), top(corrupt))
    arrow(ax, right(corrupt), left(enc))
    arrow(ax, right(enc), left(dec))
    arrow(ax, (dec[1], y + 2), left(rch))
    arrow(ax, (dec[1], y - 2), left(pch))
    arrow(ax, right(rch), left(rec_loss))
    arrow(ax, right(pch), left(cls_loss))
    arrow(ax, (clean[1] - 2, clean[3]), (rec_loss[0] + 5, rec_loss[3]), dashed=True, rad=-0.045)
    ax.text(66, y + 14.4, "clean target (§3.3.3)", ha="center", va="bottom", fontsize=9, color="#495057")
    separator(ax, 46)

    # ---------------------------------------------------------------- inference
    row_title(ax, 42.5, "Inference", "test image → anomaly map S and image score")
    y = 25
    test = box(ax, 10, y, 17, "test image I", DATA)
    net = box(ax, 33, y, 22, "encoder + decoder\n(trained network)", FROZEN, bold=True)
    e_box = box(ax, 58, y + 8.5, 21, "E = mean_c (I − Î)²\n(from RCH)", HEAD)
    p_box = box(ax, 58, y - 8.5, 21, "P = mean_l P^[l]\n(from PCH)", HEAD)
    s_box = box(ax, 87, y, 25, "S = G( G(E) ⊙ G(P) )\nanomaly map", SCORE, bold=True)
    score = box(ax, 116.5, y, 20, "image score\n= mean(S)", SCORE, bold=True)
    arrow(ax, right(test), left(net))
    arrow(ax, (net[1], y + 2), left(e_box))
    arrow(ax, (net[1], y - 2), left(p_box))
    arrow(ax, right(e_box), (s_box[0], y + 2))
    arrow(ax, right(p_box), (s_box[0], y - 2))
    arrow(ax, right(s_box), left(score))
    ax.text(87, y - 5.5, "G: Gaussian smoothing\n(smoothing_sigma)", ha="center", va="top", fontsize=9,
            color="#495057")

    # ---------------------------------------------------------------- legend
    legend = [(DATA, "data"), (TRAINED, "trained"), (FROZEN, "frozen / fixed"), (HEAD, "heads and maps"),
              (LOSS, "losses"), (SCORE, "scores")]
    for i, (colour, name) in enumerate(legend):
        x = 6 + i * 21
        ax.add_patch(FancyBboxPatch((x, 2.0), 3, 2.4, boxstyle="round,pad=0.1", facecolor=colour, edgecolor=EDGE,
                                    linewidth=0.8))
        ax.text(x + 4.2, 3.2, name, ha="left", va="center", fontsize=9.5)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def main() -> None:
    """Command line: ``-o`` chooses the output file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT, help="PNG to write (default: %(default)s)")
    print(draw(parser.parse_args().output))


if __name__ == "__main__":
    main()
