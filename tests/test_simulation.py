import dataclasses
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from tissuefate.io.bids import ParticipantFiles, read_sidecar
from tissuefate.io.derivatives import SPACE
from tissuefate.io.units import adc_factor_from_units, detect_adc_factor
from tissuefate.simulation import participant_labels, simulate_participant, write_plan
from tissuefate.simulation.clinical import PAPER_GROUP_COUNTS, allocate, make_plan

from support import load_config


def _arrays(root, label):
    files = ParticipantFiles(root, label)
    out = {}
    for name in ("b0", "b1000", "adc", "Tmax", "CBF"):
        path = files.baseline(name)
        if path.exists():
            out[name] = np.asarray(nib.load(path).dataobj)
    return out


def test_same_seed_same_dataset(tmp_path, ci_config):
    for run in ("a", "b"):
        write_plan(ci_config, tmp_path / run)
        simulate_participant(ci_config, tmp_path / run, "001")
    a, b = _arrays(tmp_path / "a", "001"), _arrays(tmp_path / "b", "001")
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert (tmp_path / "a" / "participants.tsv").read_bytes() == (tmp_path / "b" / "participants.tsv").read_bytes()


def test_another_seed_another_dataset(tmp_path, ci_config):
    other = dict(ci_config, seed=ci_config["seed"] + 1)
    write_plan(ci_config, tmp_path / "a")
    write_plan(other, tmp_path / "b")
    simulate_participant(ci_config, tmp_path / "a", "001")
    simulate_participant(other, tmp_path / "b", "001")
    assert not np.array_equal(_arrays(tmp_path / "a", "001")["b1000"], _arrays(tmp_path / "b", "001")["b1000"])


def test_demo_groups_in_paper_proportions():
    config = load_config("config.yaml")
    plan = make_plan(config["simulation"], config["seed"])
    included = plan[plan.simulated_exclusion == "n/a"]
    for group, count in PAPER_GROUP_COUNTS.items():
        share = (included.simulated_group == group).mean()
        assert abs(share - count / 237) <= 0.05, group
    for reason, n in config["simulation"]["n_excluded"].items():
        assert (plan.simulated_exclusion == reason).sum() == n


def test_stratified_sampling_puts_one_patient_in_each_stratum_of_each_lesion_variable():
    """simulation.sampling: stratified draws each reperfusion group's lesion variables from a Latin
    hypercube: with n patients in a group, each variable's quantile falls once in each of the n
    equal strata. Checked on the plan's values through the distributions' own CDFs (scipy.stats),
    so a transform that does not invert its CDF, or strata shared across groups, fails."""
    from scipy import stats

    from tissuefate.simulation.clinical import RATE_RANGES, group_quantiles

    config = load_config("config.yaml")
    plan = make_plan(dict(config["simulation"], sampling="stratified"), config["seed"])
    included = plan[plan.simulated_exclusion == "n/a"]
    for group, rows in included.groupby("simulated_group"):
        n = len(rows)
        collateral = stats.beta(2.0, 2.0).cdf(rows["collateral"].to_numpy())  # rounded to 1e-4 in the plan
        assert sorted(np.floor(collateral * n).astype(int)) == list(range(n)), group
        if group == "minimal":
            low, high = RATE_RANGES["minimal"]
            rate = stats.uniform(low, high - low).cdf(rows["target_reperfusion_rate"].to_numpy())
            assert sorted(np.floor(rate * n).astype(int)) == list(range(n))
    # Independent draws do not (they are the cohorts made before): some stratum holds two.
    indep = make_plan(dict(config["simulation"], sampling="independent"), config["seed"])
    major = indep[indep.simulated_group == "major"]
    cells = np.floor(stats.beta(2.0, 2.0).cdf(major["collateral"].to_numpy()) * len(major)).astype(int)
    assert len(set(cells)) < len(major)
    # Every group's quantiles are a Latin hypercube, whatever the group sizes.
    groups = ["minimal"] * 7 + ["major"] * 3 + ["n/a"] + ["minimal"] * 2
    q = group_quantiles(groups, seed=5)
    assert sorted(q) == [i for i, g in enumerate(groups) if g != "n/a"]
    for group, n in (("minimal", 9), ("major", 3)):
        for name in ("dwi", "penumbra", "reperfusion"):
            cells = sorted(int(q[i][name] * n) for i, g in enumerate(groups) if g == group)
            assert cells == list(range(n)), (group, name)


def test_largest_remainder_allocation():
    assert allocate(237, {g: float(c) for g, c in PAPER_GROUP_COUNTS.items()}) == PAPER_GROUP_COUNTS
    assert sum(allocate(13, {"a": 1.0, "b": 1.0, "c": 1.0}).values()) == 13


def test_declared_adc_units_match_the_values(simulated_bids, ci_config):
    seen = set()
    for label in participant_labels(ci_config["simulation"]):
        files = ParticipantFiles(simulated_bids, label)
        sidecar = read_sidecar(files.baseline("adc"))
        adc = np.asarray(nib.load(files.baseline("adc")).dataobj)
        declared = adc_factor_from_units(sidecar["Units"])
        assert detect_adc_factor(adc) == declared, label
        truth = json.loads((files.truth_dir() / f"sub-{label}_desc-truth.json").read_text())
        assert truth["adc_factor_to_um2_per_s"] == declared
        seen.add(declared)
    assert seen == {1.0, 1000.0}, "the CI cohort should have both ADC units"


def test_sites_differ_in_orientation_and_perfusion_covers_fewer_slices(simulated_bids, ci_config):
    orientations = set()
    for label in participant_labels(ci_config["simulation"]):
        files = ParticipantFiles(simulated_bids, label)
        dwi = nib.load(files.baseline("b1000"))
        orientations.add("".join(nib.aff2axcodes(dwi.affine)))
        if files.baseline("Tmax").exists():
            perf = nib.load(files.baseline("Tmax"))
            dwi_height = dwi.shape[2] * dwi.header.get_zooms()[2]
            perf_height = perf.shape[2] * perf.header.get_zooms()[2]
            assert perf_height < dwi_height
    assert len(orientations) >= 2


def test_truth_coordinates_reproduce_the_native_images(simulated_bids):
    """Sampling the MNI-space truth at the stored true coordinates gives back the native ADC."""
    label = "001"
    files = ParticipantFiles(simulated_bids, label)
    truth_dir = files.truth_dir()
    coords_img = nib.load(truth_dir / f"sub-{label}_ses-baseline_acq-b1000_desc-mnicoords_xfm.nii.gz")
    coords = np.asarray(coords_img.dataobj)
    adc_native = np.asarray(nib.load(files.baseline("adc")).dataobj) * adc_factor_from_units(
        read_sidecar(files.baseline("adc"))["Units"])
    assert np.allclose(coords_img.affine, nib.load(files.baseline("adc")).affine)
    truth_adc = nib.load(truth_dir / f"sub-{label}_space-{SPACE}_ADC.nii.gz")
    ijk = np.linalg.solve(truth_adc.affine[:3, :3], coords.reshape(-1, 3).T - truth_adc.affine[:3, 3:4])
    expected = ndimage.map_coordinates(np.asarray(truth_adc.dataobj), ijk, order=1).reshape(adc_native.shape)
    inside = (adc_native > 0) & (expected > 100)
    assert inside.sum() > 1000
    r = np.corrcoef(adc_native[inside], expected[inside])[0, 1]
    assert r > 0.8, r
    # The true coordinates are not the identity: the head was really moved.
    ras = nib.affines.apply_affine(coords_img.affine, np.indices(adc_native.shape).reshape(3, -1).T)
    assert np.median(np.linalg.norm(ras - coords.reshape(-1, 3), axis=1)) > 5.0


def test_native_lesion_volume_matches_truth(simulated_bids, ci_config):
    plan = pd.read_csv(simulated_bids / "derivatives/simulation/plan.tsv", sep="\t")
    checked = 0
    for label in participant_labels(ci_config["simulation"]):
        files = ParticipantFiles(simulated_bids, label)
        if not files.infarct_mask.exists():
            continue
        truth = json.loads((files.truth_dir() / f"sub-{label}_desc-truth.json").read_text())
        if truth["final_infarct_ml_mni"] < 10:
            continue
        img = nib.load(files.infarct_mask)
        native_ml = float(np.asarray(img.dataobj).sum()) * abs(np.linalg.det(img.affine[:3, :3])) / 1000
        assert native_ml == pytest.approx(truth["final_infarct_ml_mni"], rel=0.25), label
        # The label is the rater's tracing: the true infarct's volume, not its exact outline.
        true_mask, _ = _mask(files.truth_dir() / f"sub-{label}_space-{SPACE}_desc-infarct_mask.nii.gz")
        traced, _ = _mask(files.truth_dir() / f"sub-{label}_space-{SPACE}_desc-tracedinfarct_mask.nii.gz")
        assert traced.sum() == true_mask.sum() and 0.5 < 2 * (traced & true_mask).sum() / (2 * traced.sum()) < 0.98
        checked += 1
    assert checked >= 3
    assert len(plan) == len(participant_labels(ci_config["simulation"]))


def test_sidecars_declare_what_the_pipeline_needs(simulated_bids):
    files = ParticipantFiles(simulated_bids, "001")
    assert read_sidecar(files.baseline("Tmax"))["Units"] == "s"
    assert read_sidecar(files.baseline("CBF"))["Units"] == "mL/100g/min"
    assert read_sidecar(files.baseline("b1000"))["DiffusionBValue"] == 1000.0
    description = json.loads((simulated_bids / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["BIDSVersion"]


# ------------------------------------------------------------ real lesions, territories, DSC


def _included_truth(root):
    plan = pd.read_csv(root / "derivatives/simulation/plan.tsv", sep="\t", keep_default_na=False, na_values=["n/a"])
    for _, row in plan[plan["simulated_exclusion"].isna()].iterrows():
        label = row["participant_id"][4:]
        truth = ParticipantFiles(root, label).truth_dir()
        yield row, truth, label


def _mask(path):
    img = nib.load(path)
    return np.asarray(img.dataobj) > 0, img.affine


def test_lesions_are_real_library_shapes(simulated_bids):
    """Undo the documented transform (mirror; the light deformation is left in): the baseline
    lesion overlaps its SOOP source mask, and the final infarct keeps the non-reversed part."""
    from tissuefate.simulation.library import load_library, sample_2mm
    from tissuefate.simulation.lesion import lesion_source_points

    lib = load_library()
    n = 0
    for row, truth, label in _included_truth(simulated_bids):
        core, affine = _mask(truth / f"sub-{label}_space-{SPACE}_desc-core_mask.nii.gz")
        final, _ = _mask(truth / f"sub-{label}_space-{SPACE}_desc-infarct_mask.nii.gz")
        ijk = np.indices(core.shape, dtype=float)
        world = np.einsum("ij,j...->i...", affine[:3, :3], ijk) + affine[:3, 3, None, None, None]
        source = sample_2mm(lib.mask_2mm(int(row["lesion_index"])).astype(np.float32),
                            lesion_source_points(world, bool(row["mirrored"]), None), order=1) >= 0.5
        if source.sum() < 8:  # below a few voxels at 4 mm the shape is a blob whatever its source
            continue
        dice = 2 * (core & source).sum() / (core.sum() + source.sum())
        assert dice > 0.6, (label, dice)
        kept = (final & source).sum() / source.sum()
        assert kept > (1.0 - float(row["reversal_fraction"])) * 0.6, (label, kept)  # less CSF and deformation
        # Another library lesion of similar size does not fit: the shape is specific.
        other = int(np.argsort(np.abs(lib.volume_ml - lib.volume_ml[int(row["lesion_index"])]))[1])
        wrong = sample_2mm(lib.mask_2mm(other).astype(np.float32),
                           lesion_source_points(world, bool(row["mirrored"]), None), order=1) >= 0.5
        assert 2 * (core & wrong).sum() / (core.sum() + wrong.sum()) < dice
        n += 1
    assert n >= 8


def test_hypoperfusion_lies_in_the_occluded_territory(simulated_bids):
    from tissuefate.simulation.library import artery_labels, load_atlas_2mm, sample_2mm

    atlas = load_atlas_2mm().astype(np.float32)
    for row, truth, label in _included_truth(simulated_bids):
        tmax_img = nib.load(truth / f"sub-{label}_space-{SPACE}_Tmax.nii.gz")
        tmax6 = np.asarray(tmax_img.dataobj) > 6.0
        ijk = np.indices(tmax6.shape, dtype=float)
        world = np.einsum("ij,j...->i...", tmax_img.affine[:3, :3], ijk) + tmax_img.affine[:3, 3, None, None, None]
        labels = sample_2mm(atlas, world, order=0)
        sides = ("left", "right") if row["side"] == "bilateral" else (row["side"],)
        territory = np.isin(labels, [lab for s in sides for lab in artery_labels(row["artery"], s)])
        core, _ = _mask(truth / f"sub-{label}_space-{SPACE}_desc-core_mask.nii.gz")
        # The lesion itself (up to 25 % of it may lie outside the territory) is hypoperfused too.
        region = ndimage.binary_dilation(territory | core, iterations=1)  # one voxel of grid tolerance
        assert tmax6.sum() > 0, label
        assert (tmax6 & region).sum() / tmax6.sum() > 0.95, (label, row["artery"])
        assert (tmax6 & territory).sum() / tmax6.sum() > 0.7, (label, row["artery"])
        # The hypoperfusion is as large as planned (calibrated to the paper's volumes).
        voxel_ml = abs(np.linalg.det(tmax_img.affine[:3, :3])) / 1000
        planned = max(float(row["tmax6_target_ml"]), core.sum() * voxel_ml)  # the lesion is always hypoperfused
        assert tmax6.sum() * voxel_ml == pytest.approx(planned, rel=0.02, abs=0.2), label


def test_thresholds_are_imperfect_for_physiological_reasons(simulated_bids):
    """Benign oligaemia (Tmax > 6 s tissue that survives) and infarct growth beyond the baseline
    Tmax > 6 s region both happen in minimal reperfusion; ADC < 620 misses the lesion's rim."""
    survived, outside, missed_rim = [], [], []
    for row, truth, label in _included_truth(simulated_bids):
        tmax6 = np.asarray(nib.load(truth / f"sub-{label}_space-{SPACE}_Tmax.nii.gz").dataobj) > 6.0
        adc = np.asarray(nib.load(truth / f"sub-{label}_space-{SPACE}_ADC.nii.gz").dataobj)
        core, _ = _mask(truth / f"sub-{label}_space-{SPACE}_desc-core_mask.nii.gz")
        final, _ = _mask(truth / f"sub-{label}_space-{SPACE}_desc-infarct_mask.nii.gz")
        missed_rim.append(((adc >= 620) & core).sum() / max(core.sum(), 1))
        if row["simulated_group"] == "minimal":
            survived.append((tmax6 & ~final).sum() / tmax6.sum())
            outside.append((final & ~tmax6).sum() / max(final.sum(), 1))
    assert min(survived) > 0.05 and max(outside) > 0.05
    assert np.median(missed_rim) > 0.05


def _dsc_case():
    cbf = np.array([58.0, 22.0, 40.0, 15.0, 30.0, 8.0])
    cbv = np.array([4.2, 2.0, 4.5, 2.4, 3.8, 1.5])
    tmax = np.array([0.4, 0.4, 3.0, 6.5, 8.0, 10.0])
    shape = (cbf.size, 1, 1)
    maps = {"CBF": cbf.reshape(shape), "CBV": cbv.reshape(shape), "Tmax": tmax.reshape(shape),
            "brain": np.ones(shape, dtype=np.float32)}
    coords = np.zeros((3,) + shape)
    coords[0] = np.linspace(20, 40, cbf.size).reshape(shape)
    return maps, coords


@pytest.mark.parametrize("site_index", [0, 1, 2])
def test_dsc_series_reproduces_true_maps_by_indicator_dilution(site_index):
    """Noise-free: Delta R2* = -ln(S/S0)/TE; kH/rho sum C / sum AIF = r CBV (r: tissue/arterial
    relaxivity); true Tmax = delay + residue peak; grey matter drops 20-40 % at the bolus."""
    from tissuefate.simulation.dsc import KH, RHO_G_PER_ML, TISSUE_RELAXIVITY_RATIO, residue_peak_time, simulate_dsc
    from tissuefate.simulation.protocol import SITES

    maps, coords = _dsc_case()
    series, truth = simulate_dsc(maps, coords, SITES[site_index], np.random.default_rng(1), noise=False,
                                 lesion_side="left")
    te = series.sidecar["EchoTime"]
    signal = series.signal.reshape(-1, series.signal.shape[-1]).astype(float)
    assert np.all(signal[:, 0] > 1.3 * signal[:, 1])  # the non-steady-state first frame
    s0 = signal[:, 1:5].mean(axis=1, keepdims=True)
    r2 = -np.log(signal[:, 1:] / s0) / te
    aif_voxel = np.ravel_multi_index(tuple(np.array(truth.aif["voxels_ijk"][0])), maps["CBF"].shape)
    aif = r2[aif_voxel]
    np.testing.assert_allclose(aif, truth.aif["delta_r2star_per_s"][1:], rtol=1e-4, atol=1e-3)
    tissue = [i for i in range(signal.shape[0]) if i not in [np.ravel_multi_index(tuple(v), maps["CBF"].shape)
                                                             for v in truth.aif["voxels_ijk"]]]
    cbv = KH / RHO_G_PER_ML * r2[tissue].sum(axis=1) / aif.sum() * 100
    np.testing.assert_allclose(cbv / TISSUE_RELAXIVITY_RATIO, maps["CBV"].ravel()[tissue], rtol=0.03)
    # Peak signal drop of normal grey matter (the first tissue voxel: CBF 58, CBV 4.2).
    grey = tissue[0]
    drop = 1 - signal[grey, 1:].min() / s0[grey, 0]
    assert 0.20 <= drop <= 0.40, drop
    mtt = truth.maps["MTT"].ravel()
    np.testing.assert_allclose(mtt, 60 * maps["CBV"].ravel() / maps["CBF"].ravel(), rtol=1e-5)
    tmax = truth.maps["delay"].ravel() + residue_peak_time(mtt, truth.maps["dispersion"].ravel())
    np.testing.assert_allclose(tmax[2:], maps["Tmax"].ravel()[2:], rtol=1e-4)


def test_every_perfusion_study_has_a_raw_dsc_series(simulated_bids):
    from tissuefate.simulation.simulate import dsc_path

    n = 0
    for label in participant_labels(load_config("ci.yaml")["simulation"]):
        files = ParticipantFiles(simulated_bids, label)
        for session, maps in (("baseline", files.baseline("Tmax")), ("followup", files.tmax_followup)):
            if not maps.exists():
                continue
            path = dsc_path(files, session)
            img = nib.load(path)
            assert img.ndim == 4 and img.shape[:3] == nib.load(maps).shape
            sidecar = read_sidecar(path)
            assert 0.02 <= sidecar["EchoTime"] <= 0.05 and 1.0 <= sidecar["RepetitionTime"] <= 2.0
            assert img.header.get_zooms()[3] == pytest.approx(sidecar["RepetitionTime"])
            truth = files.truth_dir() / f"sub-{label}_ses-{session}_desc-aif_dsc.json"
            assert len(json.loads(truth.read_text())["voxels_ijk"]) > 0
            n += 1
    assert n > 10


# The simulator's shortcuts (bench/bench_simulation.py) must give what the direct computation gives.


def _toy_anatomy(res: float = 4.0):
    from tissuefate.simulation.anatomy import Anatomy

    shape = (40, 46, 38)
    affine = np.diag([res, res, res, 1.0])
    affine[:3, 3] = [-78.0, -112.0, -70.0]
    ijk = np.indices(shape, dtype=float)
    r = np.sqrt(((ijk[0] - 20) / 16) ** 2 + ((ijk[1] - 24) / 19) ** 2 + ((ijk[2] - 18) / 15) ** 2)
    brain = r < 1.0
    gm = np.where(brain, np.clip(r, 0, 1), 0).astype(np.float32)
    wm = np.where(brain, 1 - gm, 0).astype(np.float32) * 0.9
    csf = (np.clip(1 - gm - wm, 0, 1) * brain).astype(np.float32)
    return Anatomy(affine=affine, t1=gm, gm=gm, wm=wm, csf=csf, brain=brain, resolution_mm=res)


def test_fortran_order_keeps_values():
    from tissuefate.simulation.simulate import fortran_order

    rng = np.random.default_rng(0)
    for data, dtype in ((rng.normal(1000, 50, (7, 6, 5, 9)), np.int16), (rng.normal(size=(7, 6, 5)), np.float32),
                        (np.moveaxis(rng.normal(size=(3, 7, 6, 5)), 0, -1), np.float32)):
        out = fortran_order(data, dtype)
        assert out.flags.f_contiguous and out.dtype == dtype
        np.testing.assert_array_equal(out, np.asarray(data, dtype=dtype))


def test_sampling_near_the_support_equals_interpolating_every_point():
    from tissuefate.simulation.protocol import grid_affine, random_pose, rigid, sample_to_grid

    anat = _toy_anatomy()
    rng = np.random.default_rng(3)
    pose = random_pose(anat, rng, 15.0, 10.0, 2.5)
    blob = np.zeros(anat.shape, dtype=np.float32)
    blob[12:20, 20:31, 10:16] = rng.uniform(1, 2, (8, 11, 6))
    volumes = {"blob": blob, "brain": anat.brain.astype(np.float32)}
    affine, shape = grid_affine("LAS", (3.2, 3.2, 4.5), (240.0, 240.0, 156.0))
    motion = rigid((4.0, -3.0, 2.0), (3.0, -2.0, 5.0))
    out, coords = sample_to_grid(volumes, anat, pose, motion, affine, shape)
    out_nc, none = sample_to_grid(volumes, anat, pose, motion, affine, shape, coords=False)
    # The direct computation: every point deformed and interpolated.
    p = np.indices(shape, dtype=np.float64).reshape(3, -1)
    p = affine[:3, :3] @ p + affine[:3, 3:4]
    q = pose.to_mni(motion[:3, :3] @ p + motion[:3, 3:4])
    ijk = np.linalg.solve(anat.affine[:3, :3], q - anat.affine[:3, 3:4])
    np.testing.assert_array_equal(coords, q.reshape((3,) + shape))
    assert none is None
    for name, vol in volumes.items():
        ref = ndimage.map_coordinates(vol, ijk, order=1, mode="constant", cval=0.0).reshape(shape)
        assert ref.any() and (ref == 0).any()
        np.testing.assert_array_equal(out[name], ref)
        np.testing.assert_array_equal(out_nc[name], ref)


def test_core_depth_and_followup_shortcuts_equal_the_full_grid_computation():
    from tissuefate.simulation.anatomy import smooth_noise
    from tissuefate.simulation.lesion import core_depth_map, followup_severity, tmax_from_severity

    anat = _toy_anatomy()
    core = np.zeros(anat.shape, dtype=bool)
    core[14:21, 18:26, 12:17] = True
    core[14, 18, 12] = False
    depth = core_depth_map(anat, core, np.random.default_rng(5))
    inside = ndimage.distance_transform_edt(core, sampling=anat.resolution_mm)
    noise = smooth_noise(np.random.default_rng(5), anat.shape, 4.0 / anat.resolution_mm)
    ref = np.where(core, np.clip((inside - 0.5 * anat.resolution_mm) / 6.0 + 0.45 * noise, 0, 1), 0).astype(np.float32)
    np.testing.assert_array_equal(depth, ref)

    severity = np.clip(smooth_noise(np.random.default_rng(6), anat.shape, 3.0) * 0.4, 0, 1).astype(np.float32)
    severity[~anat.brain] = 0
    s24, achieved = followup_severity(severity, 40.0, 0.064)
    base = (tmax_from_severity(severity) > 6.0).sum()
    after = (tmax_from_severity(s24) > 6.0).sum()
    assert base > 100 and achieved == pytest.approx(100.0 * (1 - after / base), abs=1e-9)
    assert 30.0 < achieved < 50.0


def test_the_plans_anatomy_file_holds_exactly_the_anatomy_and_another_grid_is_recomputed(tmp_path):
    # Each participant's job reads the anatomy the plan wrote instead of resampling the template
    # again: the simulated images are byte-identical only if every array comes back exactly.
    from dataclasses import fields

    from tissuefate.simulation.anatomy import Anatomy, load_anatomy, read_anatomy, save_anatomy

    anat = load_anatomy(3)
    path = save_anatomy(anat, tmp_path / "anatomy.npz")
    back = read_anatomy(path, 3)
    for f in fields(Anatomy):
        a, b = np.asarray(getattr(anat, f.name)), np.asarray(getattr(back, f.name))
        assert a.dtype == b.dtype and a.shape == b.shape, f.name
        assert np.array_equal(a, b), f.name
    assert isinstance(back.resolution_mm, float)
    # A file of another grid (the config changed) or no file at all: computed, not misread.
    assert read_anatomy(path, 4).shape == load_anatomy(4).shape != anat.shape
    assert read_anatomy(tmp_path / "missing.npz", 3) is anat
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert read_anatomy(tmp_path / "broken.npz", 3) is anat


def test_demo_cohort_volumes_land_inside_the_papers_ranges():
    """Table 1 of docs/simulation.md's calibration, on the demo cohort (60 included patients,
    truth MNI space): every imaging median (baseline DWI, Tmax > 6 s, mismatch ratio, final
    infarct) inside the paper's IQR for its group. Deterministic (seeded)."""
    from tissuefate.simulation.calibration import PAPER_TARGETS, calibration_table, measure_cohort

    table = calibration_table(measure_cohort(load_config("config.yaml")))
    table = table[table["target"].isin(list(PAPER_TARGETS))]
    assert len(table) == 16
    outside = table.loc[~table["inside"], ["target", "group", "simulated", "paper"]]
    assert outside.empty, outside.to_string()


def test_thresholding_on_a_paper_sized_cohort_lands_inside_the_papers_ranges():
    """The thresholding row on the patients a paper-sized cohort would test (42 minimal, 72 major
    at the demo's 3 mm): median Dice inside the paper's IQR and Lin's rho_c inside its 95 % CI,
    for both targets. One seeded draw: across 10 seeds of the same design only 3 land all four
    inside (tissue-at-risk rho_c and core Dice sit on the edge of the paper's ranges;
    docs/simulation.md, "Calibration across seeds"), so this guards the documented table, not
    the calibration's centre."""
    from tissuefate.simulation.calibration import calibration_table, measure_cohort

    config = load_config("config.yaml")
    config["simulation"]["n_included"] = 237
    table = calibration_table(measure_cohort(config, groups=("minimal", "major"), tested_only=True))
    table = table[table["target"].str.startswith("thresholding")]
    assert len(table) == 4 and table["n"].tolist() == [42, 42, 72, 72]
    outside = table.loc[~table["inside"], ["target", "group", "simulated", "paper"]]
    assert outside.empty, outside.to_string()


def test_patients_meant_to_have_reperfused_completely_show_no_tmax_lesion_in_their_maps(tmp_path):
    """The demo's patients planned as 'complete reperfusion at baseline' have no Tmax > 6 s voxel
    in the written (noisy, resampled) baseline Tmax map, so the pipeline excludes them as meant
    (with a delay up to Tmax 5.4 s, the map noise gave demo patient sub-020 a 0.06 mL lesion)."""
    config = load_config("config.yaml")
    plan = write_plan(config, tmp_path)
    meant = plan.loc[plan["simulated_exclusion"] == "complete_reperfusion_at_baseline", "participant_id"]
    assert len(meant) == 2
    for sub in meant:
        label = sub.removeprefix("sub-")
        simulate_participant(config, tmp_path, label)
        tmax = np.asarray(nib.load(ParticipantFiles(tmp_path, label).baseline("Tmax")).dataobj)
        assert 1.0 < tmax.max() < 6.0, (sub, tmax.max())


def test_the_infarct_label_is_a_raters_tracing_that_keeps_the_volume_on_its_own_stream():
    """lesion.traced_outline (docs/simulation.md, "The rater's tracing"): the label holds exactly
    the true infarct's volume, in tissue; two independent tracings at TRACING_RMS_MM agree about
    as real raters do (Dice near 0.73) and less than either agrees with the truth; a larger RMS
    agrees less; RMS 0 is the truth itself; the tracing draws on its own stream only."""
    from tissuefate.metrics import dice
    from tissuefate.simulation.anatomy import load_anatomy
    from tissuefate.simulation.lesion import simulate_lesion, traced_outline
    from tissuefate.simulation.simulate import lesion_params, traced_final

    sim = load_config("config.yaml")["simulation"]
    plan = make_plan(sim, 11)
    anat = load_anatomy(3)
    tissue = anat.brain & (anat.csf < 0.6)
    inter, to_truth, wide = [], [], []
    for i, row in plan[plan["simulated_exclusion"] == "n/a"].head(14).iterrows():
        rng = np.random.default_rng([11, 2, i])
        maps = simulate_lesion(anat, lesion_params(row, sim), rng)
        final = maps.final_infarct
        if final.sum() < 100:
            continue
        after = rng.standard_normal(4)
        a = traced_final(anat, maps, 11, int(i))
        # The tracing did not touch the patient's stream: its next draws are as without it.
        replay = np.random.default_rng([11, 2, i])
        simulate_lesion(anat, lesion_params(row, sim), replay)
        np.testing.assert_array_equal(replay.standard_normal(4), after)
        np.testing.assert_array_equal(traced_final(anat, maps, 11, int(i)), a)
        b = traced_outline(anat, final, np.random.default_rng([11, 99, i]))
        assert a.sum() == b.sum() == final.sum() and not (a & ~tissue).any()
        np.testing.assert_array_equal(traced_outline(anat, final, np.random.default_rng(0), 0.0), final)
        inter.append(dice(a, b))
        to_truth.append(dice(a, final))
        wide.append(dice(a, traced_outline(anat, final, np.random.default_rng([11, 99, i]), 5.0)))
    assert len(inter) >= 8
    assert 0.62 < np.mean(inter) < 0.84, inter
    assert np.mean(inter) < np.mean(to_truth) < 0.95 and np.mean(wide) < np.mean(inter)


def test_the_lesions_adc_drop_scales_with_its_per_patient_factor_and_is_off_by_default(monkeypatch):
    """ADC = ADC0 (1 - 0.05 s)(1 - adc_drop (ADC_RIM_DROP + ADC_DEPTH_DROP depth)) in the lesion
    (docs/simulation.md, "Towards the next calibration"); the factor is drawn only when
    ADC_DROP_LOG_SD > 0, so default plans (and cohorts) keep every draw they had, and switching
    it on changes no other variable of the plan."""
    import tissuefate.simulation.clinical as clinical
    from tissuefate.simulation.anatomy import load_anatomy
    from tissuefate.simulation.lesion import ADC_UM2_PER_S, _mix, simulate_lesion
    from tissuefate.simulation.simulate import lesion_params

    sim = load_config("config.yaml")["simulation"]
    plan = make_plan(sim, 7)
    assert "adc_drop" not in plan.columns
    monkeypatch.setattr(clinical, "ADC_DROP_LOG_SD", 0.4)
    varied = make_plan(sim, 7)
    pd.testing.assert_frame_equal(varied.drop(columns="adc_drop"), plan)
    drops = varied.loc[varied["lesion_index"] >= 0, "adc_drop"]
    assert (drops > 0).all() and 0.2 < np.log(drops).std() < 0.6

    anat = load_anatomy(4)
    row = plan[(plan["simulated_exclusion"] == "n/a")].iloc[0]
    maps = {m: simulate_lesion(anat, dataclasses.replace(lesion_params(row, sim), adc_drop=m), np.random.default_rng(3))
            for m in (1.0, 0.5)}
    core = maps[1.0].core
    assert core.sum() > 20 and (maps[0.5].core == core).all()
    normal = (_mix(anat, ADC_UM2_PER_S) * (1.0 - 0.05 * maps[1.0].severity) * anat.brain)[core]
    drop = {m: normal - maps[m].adc_um2_per_s[core] for m in maps}
    assert (drop[1.0] > 0).all()
    np.testing.assert_allclose(drop[0.5], 0.5 * drop[1.0], rtol=1e-4, atol=0.05)
    outside = anat.brain & ~core
    np.testing.assert_array_equal(maps[0.5].adc_um2_per_s[outside], maps[1.0].adc_um2_per_s[outside])
