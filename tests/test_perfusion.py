"""Perfusion maps from raw DSC, checked against references no one here wrote:
the OSIPI DSC digital reference object, curves with known delay and dispersion built from
its AIF, and a real moyamoya DSC series (docs/perfusion.md)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tissuefate.cli import main as cli_main
from tissuefate.errors import InputError
from tissuefate.perfusion import compute_perfusion_maps, output_paths
from tissuefate.perfusion.deconvolution import convolution_matrix, deconvolve
from tissuefate.perfusion.maps import perfusion_maps

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DRO = SHARED / "osipi-dsc-dro" / "dsc_data.csv"
MOYAMOYA = SHARED / "dsc-moyamoya"
needs_dro = pytest.mark.skipif(not DRO.exists(), reason="../shared/data/osipi-dsc-dro is not there")
needs_moyamoya = pytest.mark.skipif(not MOYAMOYA.is_dir(), reason="../shared/data/dsc-moyamoya is not there")

# The moyamoya files give no TE; a typical 1.5-3 T gradient-echo DSC TE. TE cancels out of
# CBF, CBV, MTT, Tmax and TTP (they are ratios or times of Delta R2*): it only scales the AIF.
ASSUMED_TE_S = 0.035


def _dro():
    table = pd.read_csv(DRO)
    tissue = np.stack([np.array(c.split(), float) for c in table["C_tis"]], axis=1)
    aif = np.array(table["C_aif"][0].split(), float)
    return table, tissue, aif, float(table["tr"][0])


# ------------------------------------------------------------------ deconvolution basics


def test_circulant_matrix_is_the_causal_one_plus_wraparound():
    aif = np.array([0.0, 1.0, 3.0, 2.0, 1.0])
    causal = convolution_matrix(aif, 1.0, circulant=False)
    circ = convolution_matrix(aif, 1.0, circulant=True)
    np.testing.assert_allclose(circ[:5, :5], causal)
    # Every row of a circulant matrix is the previous one shifted by one.
    np.testing.assert_allclose(np.roll(circ[0], 1), circ[1])


def test_deconvolution_inverts_a_noise_free_convolution():
    rng = np.random.default_rng(0)
    t = np.arange(60) * 1.0
    aif = (t / 4) ** 3 * np.exp(-t / 2)
    residue = np.exp(-t / 4.0) * 0.01
    tissue = convolution_matrix(aif, 1.0, circulant=False) @ residue
    for method in ("svd", "osvd", "tikhonov"):
        b = deconvolve(tissue + rng.normal(0, 1e-6, t.size), aif, 1.0, method, tikhonov_lambda=0.02)
        assert abs(b.max() - 0.01) / 0.01 < 0.3, method


# ------------------------------------------------------------------ OSIPI DRO


@needs_dro
@pytest.mark.parametrize("method", ["osvd", "svd", "tikhonov"])
def test_osipi_dro_within_osipi_tolerances(method):
    table, tissue, aif, tr = _dro()
    residue = deconvolve(tissue, aif, tr, method)
    # The DRO's truth has no haematocrit or density correction (kH = rho = 1).
    maps = perfusion_maps(residue, tissue, aif, tr, circular=method != "svd", kh=1.0, rho_g_per_ml=1.0)
    np.testing.assert_allclose(maps["CBV"], table["cbv"], rtol=0.1, atol=1)
    np.testing.assert_allclose(maps["CBF"], table["cbf"], rtol=0.1, atol=15)


@needs_dro
def test_osipi_dro_cbf_bias_against_the_peer_result():
    """Numbers quoted in docs/perfusion.md: our oSVD against the stored L-curve SVD result."""
    table, tissue, aif, tr = _dro()
    maps = perfusion_maps(deconvolve(tissue, aif, tr), tissue, aif, tr, circular=True, kh=1.0, rho_g_per_ml=1.0)
    peer = pd.read_csv(DRO.parent / "TestResults_ParamEstimation_SR_TBG_BNIPhoenix_USA.csv")
    assert list(peer["label"]) == list(table["label"])
    ours = maps["CBF"] - table["cbf"]
    theirs = peer["cbf_meas"] - peer["cbf_ref"]
    # Both underestimate high flow (regularisation flattens the residue's peak).
    assert ours.mean() < 0 and theirs.mean() < 0
    assert np.abs(ours).max() < 15 + 0.1 * 70


# ------------------------------------------------------------------ delay and dispersion


def _delayed_tissue(aif, tr, cbf, cbv, delay_s, dispersion_s):
    """Tissue curve of the DRO AIF through an exponential residue (MTT = CBV/CBF), delayed by
    ``delay_s`` and dispersed by an exponential kernel exp(-t/beta)/beta, on a 0.05 s grid."""
    t = np.arange(aif.size) * tr
    fine = 0.05
    tf = np.arange(0, t[-1] + fine, fine)
    a = np.interp(tf - delay_s, t, aif, left=0.0)
    residue = np.exp(-tf / (cbv / cbf * 60.0))
    if dispersion_s > 0:
        kernel = np.exp(-tf / dispersion_s) / dispersion_s
        residue = np.convolve(kernel, residue)[: tf.size] * fine
    tissue = cbf / 6000.0 * np.convolve(a, residue)[: tf.size] * fine
    return np.interp(t, tf, tissue), float(tf[np.argmax(residue)])


def _fit(tissue, aif, tr, method):
    b = deconvolve(tissue[:, None], aif, tr, method)
    m = perfusion_maps(b, tissue[:, None], aif, tr, circular=method != "svd", kh=1.0, rho_g_per_ml=1.0)
    return float(m["CBF"][0]), float(m["Tmax"][0])


@needs_dro
@pytest.mark.parametrize("dispersion_s", [0.0, 1.0])
def test_osvd_tmax_follows_the_delay_and_cbf_stays_in_tolerance(dispersion_s):
    _, _, aif, tr = _dro()
    cbf_true, cbv_true = 50.0, 4.0
    ref_tissue, peak_shift = _delayed_tissue(aif, tr, cbf_true, cbv_true, 0.0, dispersion_s)
    _, tmax0 = _fit(ref_tissue, aif, tr, "osvd")
    # The residue's own peak (0 s without dispersion) is smeared by regularisation by about one frame.
    assert abs(tmax0 - peak_shift) < 1.5 * tr
    for delay in np.arange(0.0, 8.01, 0.5):
        tissue, _ = _delayed_tissue(aif, tr, cbf_true, cbv_true, delay, dispersion_s)
        cbf, tmax = _fit(tissue, aif, tr, "osvd")
        assert abs((tmax - tmax0) - delay) <= tr / 2, (delay, tmax, tmax0)
        assert abs(cbf - cbf_true) <= 15 + 0.1 * cbf_true, (delay, cbf)


@needs_dro
def test_standard_svd_is_delay_sensitive_where_osvd_is_not():
    """Wu 2003: truncated SVD with a causal matrix depends on the AIF-tissue delay; the
    block-circulant oSVD does not."""
    _, _, aif, tr = _dro()
    results = {}
    for method in ("svd", "osvd"):
        fits = [_fit(_delayed_tissue(aif, tr, 50.0, 4.0, d, 0.0)[0], aif, tr, method) for d in np.arange(-2.0, 8.01, 0.5)]
        results[method] = np.array(fits)
    delays = np.arange(-2.0, 8.01, 0.5)
    zero = int(np.argmin(np.abs(delays)))
    for method, fits in results.items():
        cbf, tmax = fits[:, 0], fits[:, 1]
        results[method] = {
            "cbf_spread": (cbf.max() - cbf.min()) / cbf[zero],
            "tmax_error": np.abs((tmax - tmax[zero]) - delays)[delays >= 0].max(),
        }
    # Tissue that arrives 2 s before the AIF (an AIF from a late artery): sSVD cannot represent
    # it and its CBF jumps by more than 30 %; oSVD stays within 10 % over -2 .. 8 s.
    assert results["svd"]["cbf_spread"] > 0.3
    assert results["osvd"]["cbf_spread"] < 0.1
    # sSVD's Tmax misses the delay by more than half a frame somewhere in 0-8 s.
    assert results["svd"]["tmax_error"] > tr / 2
    assert results["osvd"]["tmax_error"] <= tr / 2


# ------------------------------------------------------------------ a synthetic series (files, CLI, errors)


def _phantom_series(folder: Path, *, frames=40, bolus=True, arteries=True, te=0.03, clip=None, ndim=4,
                    name="sub-01_ses-baseline_dsc", sidecar=None, delay_s=4.0) -> Path:
    """A 20 x 20 x 2 head: tissue with a healthy and a delayed half (rows < 10, by ``delay_s``),
    and a few artery voxels."""
    rng = np.random.default_rng(1)
    tr = 1.5
    t = np.arange(frames) * tr
    aif = np.where(t > 12, ((t - 12) / 3) ** 3 * np.exp(-(t - 12) / 1.5), 0.0) * 600.0 * bolus  # 1/s, peak about 100
    shape = (20, 20, 2)
    yy, xx = np.mgrid[:20, :20]
    head = ((yy - 9.5) ** 2 + (xx - 9.5) ** 2) < 81
    dr2s = np.zeros(shape + (frames,))
    for z in range(2):
        for i, j in np.argwhere(head):
            delay = delay_s if i < 10 else 0.0
            mtt = 4.0
            r = np.exp(-np.clip(t - delay, 0, None) / mtt) * (t >= delay)
            dr2s[i, j, z] = np.convolve(aif, r)[:frames] * tr * 0.01
    if arteries:
        for i, j in [(6, 12), (7, 12), (12, 6), (13, 6)]:
            dr2s[i, j, :] = aif
    s0 = np.where(head, 1000.0, 20.0)[..., None]
    signal = s0[:, :, None] * np.exp(-te * dr2s) + rng.normal(0, 2, shape + (frames,))
    signal[..., 0] *= 1.15 * head[..., None] + (~head[..., None])  # non-steady-state first frame
    if clip is not None:
        signal = np.minimum(signal, clip)
    data = signal.astype(np.float32)
    if ndim == 3:
        data = data[..., 5]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 4.0, 1.0])), str(path))
    meta = {"RepetitionTime": tr, "EchoTime": te} if sidecar is None else sidecar
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return path


def test_job_writes_maps_aif_and_qc_with_units(tmp_path):
    series = _phantom_series(tmp_path / "in")
    out = tmp_path / "out"
    summary = compute_perfusion_maps(series, out, participant="01")
    paths = output_paths(out, "sub-01_ses-baseline")
    assert all(p.exists() for p in paths.values()), [p for p in paths.values() if not p.exists()]
    assert summary["NonSteadyStateFramesDropped"] == 1
    assert json.loads(paths["Tmax_json"].read_text())["Units"] == "s"
    assert json.loads(paths["CBF_json"].read_text())["Units"] == "mL/100g/min"
    aif_meta = json.loads(paths["aif_json"].read_text())
    # The automatic AIF found the artery voxels we put there.
    assert {tuple(v[:2]) for v in aif_meta["VoxelIndices"]} <= {(6, 12), (7, 12), (12, 6), (13, 6)}
    tmax = nib.load(paths["Tmax"]).get_fdata()
    brain = nib.load(paths["brain_mask"]).get_fdata() > 0
    late, early = brain.copy(), brain.copy()
    late[10:] = False
    early[:10] = False
    # The delayed half is 4 s later.
    assert abs(np.median(tmax[late]) - np.median(tmax[early]) - 4.0) < 1.5 / 2
    for name in ("CBF", "CBV", "MTT", "Tmax", "TTP"):
        assert np.isfinite(nib.load(paths[name]).get_fdata()).all()
    # Same input, same bytes.
    again = tmp_path / "again"
    compute_perfusion_maps(series, again, participant="01")
    for name in ("CBF", "Tmax"):
        assert paths[name].read_bytes() == output_paths(again, "sub-01_ses-baseline")[name].read_bytes()


def test_tmax_over_6s_against_the_phantom_truth(tmp_path):
    """The QC measure of the simulated cohort (Dice, volume error of Tmax > 6 s) on a series
    whose truth is known: one half of the head delayed by 8 s, the other by 0 s."""
    from tissuefate.perfusion.qc import tmax_threshold_agreement, write_tmax_agreement

    series = _phantom_series(tmp_path / "in", frames=50, delay_s=8.0)
    compute_perfusion_maps(series, tmp_path / "out")
    paths = output_paths(tmp_path / "out", "sub-01_ses-baseline")
    tmax = nib.load(paths["Tmax"]).get_fdata()
    brain = nib.load(paths["brain_mask"]).get_fdata() > 0
    truth = np.zeros_like(tmax)
    truth[:10] = 8.0
    row = tmax_threshold_agreement(tmax, truth, brain, voxel_ml=0.016)
    assert row["dice"] > 0.95 and abs(row["volume_error_percent"]) < 5
    write_tmax_agreement([{"participant_id": "sub-01", "session": "baseline", **row}], tmp_path / "qc.tsv")
    table = pd.read_csv(tmp_path / "qc.tsv", sep="\t")
    assert table.loc[0, "dice"] == row["dice"]


def test_cli_perfusion(tmp_path, capsys):
    series = _phantom_series(tmp_path / "in")
    assert cli_main(["perfusion", str(series), "--out", str(tmp_path / "out"), "--method", "tikhonov"]) == 0
    assert (tmp_path / "out" / "sub-01_ses-baseline_Tmax.nii.gz").exists()
    assert cli_main(["perfusion", str(_phantom_series(tmp_path / "bad", ndim=3)), "--out", str(tmp_path / "o2")]) == 2
    assert "4D series" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ndim=3), "a 4D series"),
        (dict(frames=12), "too short"),
        (dict(bolus=False), "no bolus"),
        (dict(arteries=False), "no arterial candidate"),
        (dict(clip=900.0), "saturated"),
        (dict(sidecar={"RepetitionTime": 1.5}), "no EchoTime"),
        (dict(sidecar={"RepetitionTime": 1.5, "EchoTime": 30}), "not in seconds"),
    ],
)
def test_bad_input_names_patient_file_fix_and_writes_nothing(tmp_path, kwargs, message):
    series = _phantom_series(tmp_path / "in", **kwargs)
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    out = tmp_path / "results" / "perfusion" / "sub-01"
    with pytest.raises(InputError) as err:
        compute_perfusion_maps(series, out, participant="01")
    text = str(err.value)
    assert message in text and text.startswith("sub-01: ") and "Fix:" in text and "sub-01_ses-baseline_" in text
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "results").exists() or not any(p.is_file() for p in (tmp_path / "results").rglob("*"))
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before


# ------------------------------------------------------------------ a real DSC series


def _moyamoya_nifti(folder: Path, name: str, variable: str) -> Path:
    from scipy.io import loadmat

    data = np.asarray(loadmat(str(MOYAMOYA / f"{name}.mat"))[variable], dtype=np.int16)[:, :, None, :]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sub-moyamoya{name}_ses-baseline_dsc.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.8, 1.8, 5.0, 1.0])), str(path))
    (folder / path.name.replace(".nii.gz", ".json")).write_text(json.dumps({"RepetitionTime": 2.0}))
    return path


@needs_moyamoya
@pytest.mark.parametrize("name, variable", [
    ("convexity", "VOL15"),
    # Known failure (docs/perfusion.md): in this posterior-fossa slice no AIF cluster peaks before
    # the tissue (2 s frames lump the 22 s and 24 s curves), so the automatic search refuses it.
    pytest.param("cerebellum", "VOL6", marks=pytest.mark.xfail(
        raises=InputError, reason="automatic AIF refuses this slice: no arterial candidate", strict=True)),
])
def test_moyamoya_aif_is_arterial_and_maps_plausible(tmp_path, name, variable):
    series = _moyamoya_nifti(tmp_path / "in", name, variable)
    out = tmp_path / "out"
    summary = compute_perfusion_maps(series, out, echo_time_s=ASSUMED_TE_S)
    assert summary["NonSteadyStateFramesDropped"] == 1  # the authors' own note: frame 1 is not steady
    paths = output_paths(out, series.name.removesuffix("_dsc.nii.gz"))
    assert paths["qc"].stat().st_size > 20_000
    aif = pd.read_csv(paths["aif_tsv"], sep="\t")["delta_r2star_per_s"].to_numpy()
    brain = nib.load(paths["brain_mask"]).get_fdata() > 0
    # Tissue curve from the same ΔR2* (recomputed from the series the way the job does).
    ttp = nib.load(paths["TTP"]).get_fdata()[brain]
    aif_ttp = 2.0 * np.argmax(aif)
    assert aif_ttp < np.median(ttp)  # early
    half = aif >= aif.max() / 2
    assert half.sum() * 2.0 <= 8.0  # narrow: full width at half maximum at most 4 frames
    assert summary["AIFPeakOverTissuePeak"] > 2.5  # high peak
    maps = {k: nib.load(paths[k]).get_fdata()[brain] for k in ("CBF", "CBV", "MTT", "Tmax")}
    assert all(np.isfinite(v).all() for v in maps.values())
    assert 0 <= np.median(maps["Tmax"]) < 4  # most tissue reached within a few seconds of the AIF
    assert 3 < np.median(maps["MTT"]) < 15
    assert np.median(maps["CBF"]) > 0 and np.median(maps["CBV"]) > 0


# ------------------------------------------------------------------ the Snakemake rule


def test_perfusion_rule_on_a_bids_session(tmp_path):
    """Rule ``perfusion`` (maps_source: computed) on a real-data layout: one session's DSC series."""
    from conftest import snakemake, workflow_copy

    bids = tmp_path / "bids"
    _phantom_series(bids / "sub-01" / "ses-baseline" / "perf")
    (bids / "participants.tsv").write_text("participant_id\tage\nsub-01\t70\n")
    work = workflow_copy(tmp_path / "wf")
    (work / "my.yaml").write_text(
        f"dataset:\n  simulate: false\n  bids_dir: {bids}\nresults_dir: results\nperfusion:\n  maps_source: computed\n"
    )
    # The switch: the participant's review reads the computed maps, so they are its input.
    review = "results/cohort/sub-01/sub-01_review.json"
    dry = snakemake(work, "--configfile", "config/config.yaml", "my.yaml", "-n", "--", review)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert "rule perfusion:" in dry.stdout and "rule review_participant:" in dry.stdout
    target = "results/perfusion/sub-01/ses-baseline"
    done = snakemake(work, "--configfile", "config/config.yaml", "my.yaml", "--", target)
    assert done.returncode == 0, done.stdout[-3000:]
    maps = output_paths(work / target, "sub-01_ses-baseline")
    assert all(p.exists() for p in maps.values())
    assert json.loads(maps["MTT_json"].read_text())["Units"] == "s"
    # Computed maps need the raw series before the DAG: refused while the cohort is simulated in the run.
    (work / "sim.yaml").write_text("perfusion:\n  maps_source: computed\n")
    refused = snakemake(work, "--configfile", "config/config.yaml", "sim.yaml", "-n")
    assert refused.returncode != 0 and "simulate the cohort first" in refused.stdout


def test_user_aif_mask_overrides_the_search(tmp_path):
    series = _phantom_series(tmp_path / "in")
    mask = np.zeros((20, 20, 2), np.uint8)
    mask[6, 12, :] = mask[7, 12, :] = 1
    nib.save(nib.Nifti1Image(mask, np.diag([2.0, 2.0, 4.0, 1.0])), str(tmp_path / "aif.nii.gz"))
    summary = compute_perfusion_maps(series, tmp_path / "out", aif_mask_path=tmp_path / "aif.nii.gz")
    assert summary["AIFMethod"] == "user" and summary["AIFVoxels"] == 4
    meta = json.loads(output_paths(tmp_path / "out", "sub-01_ses-baseline")["aif_json"].read_text())
    assert sorted(map(tuple, meta["VoxelIndices"])) == [(6, 12, 0), (6, 12, 1), (7, 12, 0), (7, 12, 1)]
    wrong = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 2), np.uint8), np.eye(4)), str(wrong))
    with pytest.raises(InputError, match="grid"):
        compute_perfusion_maps(series, tmp_path / "out2", aif_mask_path=wrong)
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_simulated_cohort_tmax_over_6s_against_the_truth(tmp_path, ci_config):
    """Item 3 of the validation on simulated patients of config/ci.yaml: their raw DSC series ->
    computed maps -> Tmax > 6 s against the simulator's true Tmax (the rows of
    results/qc/perfusion.tsv, recounted here from the files), and with
    ``perfusion.maps_source: computed`` the cohort review measures the computed Tmax."""
    import copy

    from tissuefate.cohort import read_participants, review_participant
    from tissuefate.io.bids import perfusion_maps_dir
    from tissuefate.perfusion import raw_dsc_series
    from tissuefate.perfusion.qc import true_tmax_path
    from tissuefate.simulation import simulate_participant, write_plan
    from tissuefate.stages import perfusion_table

    bids = tmp_path / "bids"
    config = copy.deepcopy(ci_config)
    config["dataset"]["bids_dir"] = str(bids)
    config["results_dir"] = str(tmp_path / "results")
    config["perfusion"] = {**config.get("perfusion", {}), "maps_source": "computed"}
    write_plan(config, bids)
    labels = ["001", "003"]  # included, a baseline lesion, both perfusion sessions simulated
    maps_dir = perfusion_maps_dir(config)
    sessions = []
    for label in labels:
        simulate_participant(config, bids, label)
        for session in ("baseline", "followup"):
            series = raw_dsc_series(bids, label, session)
            assert series.exists() and true_tmax_path(bids, label, session).exists()
            compute_perfusion_maps(series, maps_dir / f"sub-{label}" / f"ses-{session}", participant=label)
            sessions.append((label, session))

    rows = perfusion_table(config, sessions, tmp_path / "perfusion.tsv")
    table = pd.read_csv(tmp_path / "perfusion.tsv", sep="\t")
    assert list(zip(table["participant_id"], table["session"])) == [(f"sub-{lb}", s) for lb, s in sessions]
    for row, (label, session) in zip(rows, sessions):
        sub = f"sub-{label}"
        computed_img = nib.load(output_paths(maps_dir / sub / f"ses-{session}", f"{sub}_ses-{session}")["Tmax"])
        truth_img = nib.load(true_tmax_path(bids, label, session))
        computed, truth = computed_img.get_fdata() > 6.0, truth_img.get_fdata() > 6.0
        voxel_ml = abs(np.linalg.det(truth_img.affine[:3, :3])) / 1000.0
        assert row["volume_truth_ml"] == pytest.approx(truth.sum() * voxel_ml, abs=1e-3)
        assert row["volume_computed_ml"] == pytest.approx(computed.sum() * voxel_ml, abs=1e-3)
        assert row["dice"] == pytest.approx(2 * (computed & truth).sum() / (computed.sum() + truth.sum()), abs=1e-4)
    baseline = table[table["session"] == "baseline"]
    # The baseline hypoperfusion is found where the simulator put it (Dice 0.56 and 0.86 measured);
    # its volume is overestimated: the simulated tissue signal drops ~5 % only (docs/perfusion.md).
    assert (baseline["volume_truth_ml"] > 50).all() and (baseline["dice"] > 0.45).all()

    participants = read_participants(bids).set_index("participant_id")
    for label, (_, row) in zip(labels, baseline.iterrows()):
        clinical = participants.loc[f"sub-{label}"].to_dict()
        review = review_participant(bids, label, clinical, config, maps_dir=maps_dir)
        assert review["tmax_baseline_ml"] == pytest.approx(row["volume_computed_ml"], abs=1e-3)
        provided = review_participant(bids, label, clinical, config)
        assert provided["tmax_baseline_ml"] != pytest.approx(review["tmax_baseline_ml"], abs=1.0)
