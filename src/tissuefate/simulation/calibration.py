"""Calibration of the simulator against the paper's real-data numbers (docs/simulation.md).

Measured in the simulator's truth MNI space, without writing any file: per planned
patient the baseline DWI lesion (true and ADC < 620), Tmax > 6 s and final-infarct
volumes, the PWI/DWI mismatch ratio, and the thresholding approach's Dice (tissue at risk
= Tmax > 6 s or ADC < 620 vs the final infarct of minimal-reperfusion patients; core =
ADC < 620 vs that of major-reperfusion patients; the final infarct as the rater traced it, the
label the study reads), over the patients the study tests (a 3-7 day follow-up FLAIR), as the
study's thresholding row is. The thresholds see the maps as a site
acquires them: blurred to its voxel size (partial volume) and with its map noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from tissuefate.metrics import dice, mismatch_ratio
from tissuefate.simulation.anatomy import load_anatomy
from tissuefate.simulation.clinical import TEST_FOLLOWUP, make_plan
from tissuefate.simulation.lesion import simulate_lesion
from tissuefate.simulation.protocol import SITES_BY_NAME
from tissuefate.statistics import ccc_cube_root

ADC_THRESHOLD = 620.0
TMAX_THRESHOLD_S = 6.0
TMAX_NOISE_S = 0.25  # as the vendor-style maps written by simulate_participant
# ADC noise of one voxel: sd = sqrt(1/SNR_b0^2 + 1/SNR_b1000^2) / b with SNR_b0 = 1 / 0.017 (the
# sites' mean noise_fraction, white matter) and SNR_b1000 = SNR_b0 exp(-b ADC_WM) = 0.49 SNR_b0.
ADC_NOISE = 40.0  # 10^-6 mm^2/s

# Paper Table 1 (median, q1, q3) per group and the thresholding row of Online Supplemental Table 2.
PAPER_TARGETS = {
    "dwi_ml": {"minimal": (20, 6, 63), "major": (17, 6, 43), "partial": (31, 16, 83), "unknown": (31, 13, 61)},
    "tmax6_ml": {"minimal": (98, 48, 158), "major": (115, 71, 160), "partial": (126, 66, 188), "unknown": (123, 80, 171)},
    "mismatch": {"minimal": (2.9, 1.4, 6.8), "major": (5.4, 2.3, 13.9), "partial": (3.3, 2.0, 5.8), "unknown": (3.2, 1.6, 6.6)},
    "final_ml": {"minimal": (59, 28, 204), "major": (19, 8, 62), "partial": (77, 33, 149), "unknown": (57, 22, 112)},
}
PAPER_DICE = {"tissue_at_risk": (0.56, 0.42, 0.65), "core": (0.46, 0.16, 0.54)}
PAPER_CCC = {"tissue_at_risk": (0.657, 0.511, 0.804), "core": (0.625, 0.489, 0.762)}


def acquired(volume: np.ndarray, voxel_mm, mni_mm: float, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """A map as a site sees it on the MNI grid: Gaussian PSF of FWHM one native voxel, plus noise."""
    sigma = np.asarray(voxel_mm, dtype=float) / 2.355 / mni_mm
    return ndimage.gaussian_filter(volume, sigma) + rng.normal(0, noise_sd, volume.shape)


def measure_patient(config: dict, row: pd.Series, index: int) -> dict:
    """Volumes and thresholding Dice of one planned patient (included groups only)."""
    from tissuefate.simulation.simulate import lesion_params, traced_final

    sim = config["simulation"]
    anat = load_anatomy(int(sim["mni_resolution_mm"]))
    rng = np.random.default_rng([int(config["seed"]), 2, index])
    maps = simulate_lesion(anat, lesion_params(row, sim), rng)
    final = traced_final(anat, maps, int(config["seed"]), index)  # as the study sees it: traced
    site = SITES_BY_NAME[str(row["site"])]
    res = float(sim["native_resolution_mm"])
    mrng = np.random.default_rng([int(config["seed"]), 3, index])
    tmax = acquired(maps.tmax_s, np.multiply(site.perf_voxel, res), anat.resolution_mm, TMAX_NOISE_S, mrng)
    adc = acquired(maps.adc_um2_per_s, np.multiply(site.dwi_voxel, res), anat.resolution_mm, ADC_NOISE, mrng)
    tissue = anat.tissue
    tmax6 = (tmax > TMAX_THRESHOLD_S) & anat.brain
    adc620 = (adc < ADC_THRESHOLD) & tissue
    v = anat.resolution_mm**3 / 1000.0
    return {
        "participant_id": row["participant_id"],
        "group": row["simulated_group"],
        "tested": row["followup"] == TEST_FOLLOWUP,
        "artery": row["artery"],
        "core_ml": float(maps.core.sum() * v),
        "dwi_ml": float(adc620.sum() * v),
        "tmax6_ml": float(tmax6.sum() * v),
        "final_ml": float(final.sum() * v),
        "mismatch": mismatch_ratio(float(tmax6.sum() * v), float(adc620.sum() * v)),
        "tar_pred_ml": float((tmax6 | adc620).sum() * v),
        "dice_tissue_at_risk": dice(tmax6 | adc620, final),
        "dice_core": dice(adc620, final),
        # ADC < 620 against the lesion traced on DWI (Gosch et al. 2023 measured 0.43 in patients)
        "dice_adc_lesion": dice(adc620, maps.core),
        "final_outside_tmax6": float((final & ~tmax6).sum() / max(final.sum(), 1)),
    }


def measure_cohort(config: dict, max_patients: int | None = None, groups=None, tested_only: bool = False) -> pd.DataFrame:
    """``groups``: only these reperfusion groups; ``tested_only``: only patients the study tests."""
    plan = make_plan(config["simulation"], int(config["seed"]))
    rows = []
    for i, row in plan.iterrows():
        if row["simulated_exclusion"] != "n/a":
            continue
        if (groups is not None and row["simulated_group"] not in groups) or (tested_only and row["followup"] != TEST_FOLLOWUP):
            continue
        rows.append(measure_patient(config, row, int(i)))
        if max_patients is not None and len(rows) >= max_patients:
            break
    return pd.DataFrame(rows)


def _median_iqr(values) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    return tuple(float(np.percentile(values, q)) for q in (50, 25, 75)) if len(values) else (np.nan,) * 3


def calibration_table(df: pd.DataFrame) -> pd.DataFrame:
    """Simulated median (IQR) next to the paper's, per target, with 'inside' = median in paper IQR."""
    out = []
    for quantity, groups in PAPER_TARGETS.items():
        for group, paper in groups.items():
            if not (df["group"] == group).any():
                continue
            sim = _median_iqr(df.loc[df["group"] == group, quantity])
            out.append(dict(target=quantity, group=group, n=int((df["group"] == group).sum()), simulated=sim,
                            paper=paper, inside=paper[1] <= sim[0] <= paper[2]))
    for target, group, column, pred in (("tissue_at_risk", "minimal", "dice_tissue_at_risk", "tar_pred_ml"),
                                        ("core", "major", "dice_core", "dwi_ml")):
        sel = df[(df["group"] == group) & df["tested"]]
        sim = _median_iqr(sel[column])
        paper = PAPER_DICE[target]
        out.append(dict(target=f"thresholding Dice ({target})", group=group, n=len(sel), simulated=sim, paper=paper,
                        inside=paper[1] <= sim[0] <= paper[2]))
        ccc = ccc_cube_root(sel[pred].to_numpy(), sel["final_ml"].to_numpy())
        paper = PAPER_CCC[target]
        out.append(dict(target=f"thresholding rho_c ({target})", group=group, n=len(sel),
                        simulated=(ccc.ccc, ccc.ci_low, ccc.ci_high), paper=paper,
                        inside=paper[1] <= ccc.ccc <= paper[2]))
    return pd.DataFrame(out)


def _thresholding_rows(config: dict) -> dict:
    """The four thresholding numbers of one cohort (median Dice and rho_c, both targets) and
    whether each lands inside the paper's range."""
    df = measure_cohort(config, groups=("minimal", "major"), tested_only=True)
    table = calibration_table(df)
    table = table[table["target"].str.startswith("thresholding")]
    out = {"seed": int(config["seed"])}
    for _, r in table.iterrows():
        out[r["target"]] = r["simulated"][0]
        out[f"{r['target']} inside"] = bool(r["inside"])
    return out


def seed_spread(config: dict, seeds, jobs: int = 1) -> pd.DataFrame:
    """The thresholding rows of the same cohort design under other seeds: one row per seed.

    A cohort of a given size is one draw; calibrating on one seed tunes to that draw. Over
    seeds, the median of the rows estimates where the design puts them, and the share of
    seeds inside the paper's ranges is how often a cohort of this size lands inside."""
    configs = [dict(config, seed=int(s)) for s in seeds]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            rows = list(pool.map(_thresholding_rows, configs))
    else:
        rows = [_thresholding_rows(c) for c in configs]
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    lines = ["| target | group | n | simulated median (IQR) | paper median (IQR) | inside |", "|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        s, p = r["simulated"], r["paper"]
        lines.append(f"| {r['target']} | {r['group']} | {r['n']} | {s[0]:.3g} ({s[1]:.3g}–{s[2]:.3g}) | "
                     f"{p[0]:.3g} ({p[1]:.3g}–{p[2]:.3g}) | {'yes' if r['inside'] else '**no**'} |")
    return "\n".join(lines)


def patients_figure(config: dict, path, n: int = 12) -> None:
    """DWI (b=1000), Tmax and final infarct of ``n`` included patients, truth MNI space, one
    axial slice each (the slice with the most final infarct)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tissuefate.simulation.simulate import lesion_params

    sim = config["simulation"]
    plan = make_plan(sim, int(config["seed"]))
    anat = load_anatomy(int(sim["mni_resolution_mm"]))
    rows = [(i, r) for i, r in plan.iterrows() if r["simulated_exclusion"] == "n/a"][:n]
    per_row = 2
    fig, axes = plt.subplots(int(np.ceil(len(rows) / per_row)), 3 * per_row, figsize=(3 * per_row * 1.6, len(rows) / per_row * 2.0))
    for k, (i, row) in enumerate(rows):
        maps = simulate_lesion(anat, lesion_params(row, sim), np.random.default_rng([int(config["seed"]), 2, int(i)]))
        z = int(np.argmax(maps.final_infarct.sum(axis=(0, 1)))) if maps.final_infarct.any() else anat.shape[2] // 2
        dwi = maps.b0 * np.exp(-1000.0 * maps.adc_um2_per_s * 1e-6)
        panels = [(dwi[..., z], "gray", (0, 400), "DWI"), (maps.tmax_s[..., z], "jet", (0, 12), "Tmax (0-12 s)"),
                  (maps.flair[..., z], "gray", None, "final infarct")]
        for j, (img, cmap, lim, title) in enumerate(panels):
            ax = axes[k // per_row, 3 * (k % per_row) + j]
            kw = {} if lim is None else {"vmin": lim[0], "vmax": lim[1]}
            ax.imshow(np.rot90(img), cmap=cmap, **kw)
            if j == 2:
                ax.contour(np.rot90(maps.final_infarct[..., z]), levels=[0.5], colors="r", linewidths=0.8)
            if j == 1:
                ax.contour(np.rot90(maps.tmax_s[..., z] > 6), levels=[0.5], colors="w", linewidths=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            label = f"{row['participant_id']} {row['simulated_group']} {row['artery']}" if j == 0 else title
            ax.set_title(label, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
