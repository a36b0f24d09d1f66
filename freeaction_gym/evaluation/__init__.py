"""Evaluation: video prediction metrics (PSNR, SSIM, latent L2, moving-region PSNR, FID/FVD)."""

from freeaction_gym.evaluation.metrics import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    fvd_from_features,
    latent_l2,
    load_feature_extractor,
    moving_region_psnr,
    psnr_video,
    ssim_video,
)

__all__ = [
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "fvd_from_features",
    "latent_l2",
    "load_feature_extractor",
    "moving_region_psnr",
    "psnr_video",
    "ssim_video",
]
