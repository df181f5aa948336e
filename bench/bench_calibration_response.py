"""How the calibration targets respond to the lesion model's constants (docs/simulation.md,
"Towards the next calibration").

    .venv/bin/python bench/bench_calibration_response.py N_INCLUDED SEED [SEED ...] [-- NAME=VALUE ...]

e.g. ``... 237 1 2 3 4 -- ADC_RIM_DROP=0.08 EARLY_GROWTH_BETA=0.5,8``. Each NAME is one of the
named constants below (module-level in tissuefate.simulation.lesion / .clinical); they are
set in the worker processes only, nothing is written (``TRACING_RMS_MM=0`` shows the
cohort as a perfect rater would trace it). Per seed it prints the four
thresholding rows, then the medians over seeds of the thresholding rows, of the Table 1 rows
per reperfusion group, and two structural checks against real patients: the major group's
final / ADC < 620 volume ratio (paper: 19 / 17 mL) and ADC < 620 against the lesion traced on
DWI (Gosch et al. 2023: Dice 0.43, IQR 0.20-0.64).

This is for exploring a calibration against real-data numbers; never use it to choose a
setting by how the study's models score.
"""

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
CONSTANTS = {
    "lesion": ("ADC_RIM_DROP", "ADC_DEPTH_DROP", "DEATH_LENGTH_MM", "DEATH_NOISE", "REVERSAL_NOISE",
               "TRACING_RMS_MM", "TRACING_VOLUME_LOG_SD"),
    "clinical": ("CORE_PER_ADC_VOLUME", "PENUMBRA_LOSS_SCALE", "PENUMBRA_LOSS_LOG_SD", "EARLY_GROWTH_BETA",
                 "ADC_DROP_LOG_SD"),
}


def parse(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, value = item.split("=", 1)
        if not any(name in names for names in CONSTANTS.values()):
            sys.exit(f"unknown constant {name!r}: one of {sorted(n for v in CONSTANTS.values() for n in v)}")
        out[name] = tuple(float(v) for v in value.split(",")) if "," in value else float(value)
    return out


def _apply(overrides: dict) -> None:
    import importlib

    for module, names in CONSTANTS.items():
        mod = importlib.import_module(f"tissuefate.simulation.{module}")
        for name in names:
            if name in overrides:
                setattr(mod, name, overrides[name])


def one_seed(args) -> dict:
    config, overrides = args
    _apply(overrides)
    from tissuefate.simulation.calibration import calibration_table, measure_cohort

    df = measure_cohort(config)
    out = {"seed": int(config["seed"])}
    for _, r in calibration_table(df).iterrows():
        out[(r["target"], r["group"])] = r["simulated"][0]
    major = df[(df["group"] == "major") & df["tested"]]
    out["major final / ADC<620 volume"] = float(np.median(major["final_ml"] / np.maximum(major["dwi_ml"], 0.1)))
    out["Dice ADC<620 vs DWI lesion"] = float(np.median(df["dice_adc_lesion"]))
    for group in ("minimal", "major"):  # Table 1's final-volume IQR (paper: 28-204 and 8-62 mL)
        q1, q3 = np.percentile(df.loc[df["group"] == group, "final_ml"], [25, 75])
        out[(f"{group} final q1", "")], out[(f"{group} final q3", "")] = float(q1), float(q3)
    return out


def main(argv: list[str]) -> None:
    cut = argv.index("--") if "--" in argv else len(argv)
    n_included, seeds = int(argv[0]), [int(s) for s in argv[1:cut]]
    overrides = parse(argv[cut + 1:])
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["simulation"]["n_included"] = n_included
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(one_seed, [(dict(config, seed=s), overrides) for s in seeds]))
    df = pd.DataFrame(rows).set_index("seed")
    thresholding = [c for c in df.columns if isinstance(c, tuple) and c[0].startswith("thresholding")]
    table1 = [c for c in df.columns if isinstance(c, tuple) and not c[0].startswith("thresholding") and c[1]]
    quartiles = [c for c in df.columns if isinstance(c, tuple) and not c[1]]
    print(f"overrides {overrides or 'none'}; {n_included} included, seeds {seeds}; {time.perf_counter() - start:.0f} s")
    print(df[thresholding].rename(columns=lambda c: c[0].replace("thresholding ", "")).round(3).to_string())
    print("median over seeds:")
    for c in thresholding:
        print(f"  {c[0]}: {df[c].median():.3f}")
    med = df[table1].median()
    med.index = pd.MultiIndex.from_tuples(med.index)
    print(med.round(2).unstack().to_string())
    for c in ("major final / ADC<620 volume", "Dice ADC<620 vs DWI lesion"):
        print(f"{c}: {df[c].median():.2f}")
    print("final-volume quartiles (Table 1; paper minimal 28-204, major 8-62 mL), median over seeds:",
          ", ".join(f"{c[0]} {df[c].median():.0f}" for c in quartiles))


if __name__ == "__main__":
    main(sys.argv[1:])
