"""Test helper: write a 3D NIfTI as a DICOM series (MR Image Storage, one file per slice) with pydicom."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def write_dicom_series(nifti: str | Path, out_dir: str | Path, *, series_number: int = 1, description: str = "map",
                       study_uid: str | None = None, rgb: bool = False) -> Path:
    """Float data stored as int16 with RescaleSlope/Intercept (what scanners do); geometry from the
    NIfTI affine (RAS) converted to DICOM's patient coordinates (LPS)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    img = nib.load(str(nifti))
    data = np.asarray(img.dataobj, dtype=np.float64)
    affine = img.affine
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lo, hi = float(data.min()), float(data.max())
    slope = (hi - lo) / 32000.0 if hi > lo else 1.0
    stored = np.round((data - lo) / slope).astype(np.int16)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    lps = np.diag([-1.0, -1.0, 1.0])
    row_dir = lps @ affine[:3, 0] / spacing[0]  # direction of increasing column index (NIfTI i)
    col_dir = lps @ affine[:3, 1] / spacing[1]  # direction of increasing row index (NIfTI j)
    study_uid = study_uid or generate_uid()
    series_uid, frame_uid = generate_uid(), generate_uid()
    for k in range(data.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(out_dir / f"{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "MR", "Simulated^Patient", "SIM001"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = series_number, k + 1, description
        ds.StudyDate, ds.SeriesDate, ds.StudyTime, ds.SeriesTime = "20260101", "20260101", "120000", "120000"
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ImagePositionPatient = [float(v) for v in lps @ (affine @ [0, 0, k, 1])[:3]]
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (j), column spacing (i)
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        if rgb:
            pixels = np.repeat((stored[:, :, k].T // 128).astype(np.uint8)[:, :, None], 3, axis=2)
            ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        else:
            pixels = np.ascontiguousarray(stored[:, :, k].T)  # rows = j, columns = i
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}"[:16], f"{lo:.10g}"[:16]
        ds.PixelData = pixels.tobytes()
        ds.save_as(str(out_dir / f"{k:04d}.dcm"), enforce_file_format=True)
    return out_dir
