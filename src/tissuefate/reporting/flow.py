"""The study's flow diagram (the paper's Fig 1): reviewed -> excluded by reason -> groups."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tissuefate.cohort import EXCLUSION_LABELS, EXCLUSION_REASONS  # noqa: E402

GROUP_LABELS = (("minimal", "Minimal reperfusion\n(≤ 20 %)"), ("partial", "Partial reperfusion\n(20–80 %)"),
                ("major", "Major reperfusion\n(≥ 80 %)"), ("unknown", "Unknown reperfusion\n(no 4–24 h PWI)"))


def flow_counts(cohort: pd.DataFrame) -> dict:
    included = cohort["included"].astype(bool)
    return {
        "reviewed": int(len(cohort)),
        "excluded": {r: int((cohort["exclusion_reason"] == r).sum()) for r in EXCLUSION_REASONS},
        "included": int(included.sum()),
        "groups": {g: int(((cohort["reperfusion_group"] == g) & included).sum()) for g, _ in GROUP_LABELS},
    }


def flow_figure(cohort: pd.DataFrame):
    counts = flow_counts(cohort)
    fig, ax = plt.subplots(figsize=(9, 6.2))
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)

    def box(x, y, text, w=3.2, h=0.9, color="#eef3f8"):
        ax.add_patch(plt.Rectangle((x - w / 2, y - h / 2), w, h, facecolor=color, edgecolor="#345", lw=1.2))
        ax.text(x, y, text, ha="center", va="center", fontsize=9)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="#345", lw=1.2))

    box(3.0, 9.2, f"Patients reviewed\nn = {counts['reviewed']}")
    excluded_text = "Excluded, n = {}\n".format(sum(counts["excluded"].values())) + "\n".join(
        f"{EXCLUSION_LABELS[r]}: {n}" for r, n in counts["excluded"].items())
    box(7.3, 7.4, excluded_text, w=5.0, h=1.9, color="#f8eeee")
    arrow(3.0, 8.75, 3.0, 5.95)
    arrow(3.0, 7.4, 4.8, 7.4)
    box(3.0, 5.5, f"Patients included\nn = {counts['included']}")
    xs = (1.3, 3.75, 6.25, 8.7)
    for x, (g, text) in zip(xs, GROUP_LABELS):
        arrow(3.0, 5.05, x, 3.1)
        box(x, 2.6, f"{text}\nn = {counts['groups'][g]}", w=2.3, h=1.0, color="#eef8ef")
    ax.text(5.0, 1.2, "Reperfusion rate = 100 % × (1 − V(Tmax₄₋₂₄ₕ > 6 s) / V(Tmax_baseline > 6 s))",
            ha="center", fontsize=8.5, color="#333")
    fig.tight_layout()
    return fig
