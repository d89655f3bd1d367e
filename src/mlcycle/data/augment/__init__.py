"""Data augmentation of the training split (``train.augment``; see ``docs/augment.md``).

* :func:`augment_training_set`: what fitting calls; tabular rebalancing (random copies or
  SMOTE), targeted oversampling and noisy copies, on the rows of the targeted slices;
* :func:`add_noise_at_snr`: Gaussian noise at a target SNR for audio and other signals;
* :func:`augment_images`: noise, small rotations, shifts, brightness and contrast for
  image arrays ``[N, H, W]`` / ``[N, C, H, W]``;
* :func:`check_augment_config`: every parameter checked, with the allowed range.

scipy and imbalanced-learn are imported only when a step needs them.
"""

from __future__ import annotations

from mlcycle.data.augment.apply import augment_training_set
from mlcycle.data.augment.config import check_augment_config, targets
from mlcycle.data.augment.image import augment_images, transform_images
from mlcycle.data.augment.signal import add_noise_at_snr, noise_std, snr_db

__all__ = [
    "add_noise_at_snr",
    "augment_images",
    "augment_training_set",
    "check_augment_config",
    "noise_std",
    "snr_db",
    "targets",
    "transform_images",
]
