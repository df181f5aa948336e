"""Real acute stroke lesions and arterial territories, shipped with the package.

``data/soop_lesions.npz`` holds a curated subset of the Stroke Outcome Optimization
Project's acute DWI lesions (Absher et al. 2024; CC0 data, normalised masks BSD-2 by
C. Rorden) and ``data/jhu_arterial_territories.npz`` the JHU arterial-territory atlas
(Liu et al. 2023; CC BY-SA 4.0), both on nilearn's MNI152 2009a 2 mm grid
(99 x 117 x 95, origin (-98, -134, -72)). Licences and citations: ``data/README.md``
and docs/simulation.md. ``build_library`` rebuilds the files from ``../shared``.

Each lesion is stored as its bounding box on the 2 mm grid, bit-packed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import ndimage

GRID_SHAPE_2MM = (99, 117, 95)
GRID_AFFINE_2MM = np.array([[2.0, 0, 0, -98.0], [0, 2.0, 0, -134.0], [0, 0, 2.0, -72.0], [0, 0, 0, 1.0]])

# Level-1 atlas labels (atlas_labels.tsv) per occluded artery, for the left hemisphere;
# the right hemisphere's label is the left one + 1.
ARTERY_LABELS_LEFT = {
    "M2_superior": (7, 9, 15),  # MCA frontal, parietal, insular
    "M2_inferior": (11, 13, 15),  # MCA temporal, occipital, insular
    "M1": (5, 7, 9, 11, 13, 15),  # + lateral lenticulostriates
    "ICA": (1, 3, 5, 7, 9, 11, 13, 15, 23),  # + ACA, medial lenticulostriates, anterior choroidal
    "ACA": (1, 3),
    "PCA": (17, 19, 21),
}
# When the hypoperfusion to simulate does not fit an artery's territory, the occlusion
# is taken one step more proximal.
PROXIMAL = {"M2_superior": "M1", "M2_inferior": "M1", "M1": "ICA", "ICA": "ICA", "ACA": "ICA", "PCA": "PCA"}
LIBRARY_FILE = "soop_lesions.npz"
ATLAS_FILE = "jhu_arterial_territories.npz"


@dataclass(frozen=True)
class LesionLibrary:
    soop_index: np.ndarray  # row of lesions.tsv in ../shared/data/soop-lesions
    participant: np.ndarray  # SOOP participant id
    volume_ml: np.ndarray  # on the 2 mm grid
    hemisphere: np.ndarray  # "L" or "R"
    artery: np.ndarray  # most distal artery whose territory holds >= 75 % of the lesion
    box_start: np.ndarray  # (n, 3) voxel index of the bounding box on the 2 mm grid
    box_shape: np.ndarray  # (n, 3)
    bit_offset: np.ndarray  # (n + 1,) offsets into bits (in bytes)
    bits: np.ndarray  # packed masks

    def __len__(self) -> int:
        return len(self.volume_ml)

    def mask_2mm(self, i: int) -> np.ndarray:
        """Lesion ``i`` on the full 2 mm grid (bool)."""
        shape = tuple(int(v) for v in self.box_shape[i])
        raw = np.unpackbits(self.bits[self.bit_offset[i]:self.bit_offset[i + 1]])[: int(np.prod(shape))]
        full = np.zeros(GRID_SHAPE_2MM, dtype=bool)
        s = self.box_start[i]
        full[s[0]:s[0] + shape[0], s[1]:s[1] + shape[1], s[2]:s[2] + shape[2]] = raw.reshape(shape).astype(bool)
        return full


def _data_file(name: str) -> Path:
    return Path(str(resources.files("tissuefate.simulation") / "data" / name))


@lru_cache(maxsize=1)
def load_library() -> LesionLibrary:
    with np.load(_data_file(LIBRARY_FILE), allow_pickle=False) as z:
        return LesionLibrary(**{k: z[k] for k in LesionLibrary.__dataclass_fields__})


@lru_cache(maxsize=1)
def load_atlas_2mm() -> np.ndarray:
    """Level-1 JHU arterial-territory labels (0 outside) on the 2 mm grid."""
    with np.load(_data_file(ATLAS_FILE), allow_pickle=False) as z:
        return z["labels"].astype(np.int16)


def artery_labels(artery: str, side: str) -> tuple[int, ...]:
    """Atlas labels of ``artery``'s territory on ``side`` ("left" or "right")."""
    offset = 0 if side == "left" else 1
    return tuple(label + offset for label in ARTERY_LABELS_LEFT[artery])


def sample_2mm(volume: np.ndarray, world: np.ndarray, order: int) -> np.ndarray:
    """Sample a 2 mm grid volume at world (MNI mm) points of shape (3, ...)."""
    inv = np.linalg.inv(GRID_AFFINE_2MM)
    ijk = np.einsum("ij,j...->i...", inv[:3, :3], world) + inv[:3, 3].reshape((3,) + (1,) * (world.ndim - 1))
    return ndimage.map_coordinates(volume, ijk.reshape(3, -1), order=order, mode="constant", cval=0.0).reshape(world.shape[1:])


# ------------------------------------------------------------------ building the files


def _dominant_artery(lesion: np.ndarray, atlas: np.ndarray, hemisphere: str, share: float = 0.75) -> str | None:
    side = "left" if hemisphere == "L" else "right"
    n = lesion.sum()
    for artery in ("M2_superior", "M2_inferior", "ACA", "PCA", "M1", "ICA"):
        inside = np.isin(atlas[lesion], artery_labels(artery, side)).sum()
        if inside >= share * n:
            return artery
    return None


def build_library(shared_dir: str | Path, out_dir: str | Path, n_lesions: int = 400, seed: int = 0) -> dict:
    """Curate the lesion subset and the atlas from ``shared_dir`` (../shared/data/soop-lesions).

    Kept: QC flag 'none', no chronic component in the source, one hemisphere, 1-250 mL on
    the 2 mm grid, >= 75 % inside one simulated artery's territory. All ACA and PCA lesions
    are kept; MCA lesions are subsampled evenly in log-volume to ``n_lesions`` in all.
    """
    import nibabel as nib
    import pandas as pd

    shared_dir, out_dir = Path(shared_dir), Path(out_dir)
    table = pd.read_csv(shared_dir / "lesions.tsv", sep="\t", keep_default_na=False)
    atlas = np.asarray(nib.load(str(shared_dir / "atlas.nii.gz")).dataobj).astype(np.int16)
    lesions = nib.load(str(shared_dir / "lesions.nii.gz"))
    keep = table[(table.qc_flags == "none") & (table.chronic_component_in_source == 0)
                 & table.hemisphere.isin(["L", "R"]) & table.volume_ml_2mm.between(1.0, 250.0)
                 & table.territory_major.str.match("(MCA|ACA|PCA)")]
    data = np.asarray(lesions.dataobj[..., :], dtype=np.uint8) if len(keep) > 600 else None
    rows = []
    for _, row in keep.iterrows():
        mask = (data[..., int(row["index"])] if data is not None else np.asarray(lesions.dataobj[..., int(row["index"])])) > 0
        artery = _dominant_artery(mask, atlas, row["hemisphere"])
        if artery is not None:
            rows.append((row, artery, mask))
    is_mca = np.array([a.startswith("M") or a == "ICA" for _, a, _ in rows])
    n_mca = max(n_lesions - int((~is_mca).sum()), 0)
    mca = [i for i in range(len(rows)) if is_mca[i]]
    mca.sort(key=lambda i: rows[i][0]["volume_ml_2mm"])
    chosen_mca = [mca[int(round(j))] for j in np.linspace(0, len(mca) - 1, min(n_mca, len(mca)))]
    chosen = sorted(set(chosen_mca) | {i for i in range(len(rows)) if not is_mca[i]})
    fields = {k: [] for k in ("soop_index", "participant", "volume_ml", "hemisphere", "artery", "box_start", "box_shape")}
    chunks, offsets = [], [0]
    for i in chosen:
        row, artery, mask = rows[i]
        sl = ndimage.find_objects(mask.astype(np.uint8))[0]
        box = mask[sl]
        packed = np.packbits(box.ravel())
        chunks.append(packed)
        offsets.append(offsets[-1] + len(packed))
        fields["soop_index"].append(int(row["index"]))
        fields["participant"].append(str(row["participant_id"]))
        fields["volume_ml"].append(float(mask.sum() * 0.008))
        fields["hemisphere"].append(str(row["hemisphere"]))
        fields["artery"].append(artery)
        fields["box_start"].append([s.start for s in sl])
        fields["box_shape"].append(list(box.shape))
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_dir / LIBRARY_FILE,
        soop_index=np.array(fields["soop_index"], dtype=np.int32),
        participant=np.array(fields["participant"]),
        volume_ml=np.array(fields["volume_ml"], dtype=np.float64),
        hemisphere=np.array(fields["hemisphere"]),
        artery=np.array(fields["artery"]),
        box_start=np.array(fields["box_start"], dtype=np.int16),
        box_shape=np.array(fields["box_shape"], dtype=np.int16),
        bit_offset=np.array(offsets, dtype=np.int64),
        bits=np.concatenate(chunks),
    )
    np.savez_compressed(out_dir / ATLAS_FILE, labels=atlas.astype(np.uint8))
    return {"n_candidates": len(rows), "n_kept": len(chosen),
            "arteries": pd.Series(fields["artery"]).value_counts().to_dict()}


if __name__ == "__main__":  # python -m tissuefate.simulation.library ../shared/data/soop-lesions
    import sys

    print(build_library(sys.argv[1], Path(__file__).parent / "data"))
