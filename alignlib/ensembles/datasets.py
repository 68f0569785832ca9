"""What each kind of data set is (no torch, no xarray: the Snakefile's config checks and job
sizing read it too): synthetic or real, images and their shapes, the OOD probe kinds it supports."""

from __future__ import annotations

SYNTHETIC = ("gaussian_linear", "teacher_mlp")
REAL_DATASETS = ("digits", "diabetes", "mnist", "cifar10")

#: (channels, height, width) of the image data sets
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
IMAGE_DATASETS = tuple(IMAGE_SHAPES)

#: The OOD probe kinds each data set supports (tasks.<task>.ood.kind; alignlib.ensembles.data draws them).
OOD_KINDS = {
    "gaussian_linear": ("scale", "shift"),
    "teacher_mlp": ("scale", "shift"),
    "digits": ("noise",),
    "mnist": ("noise",),
    "cifar10": ("noise",),
    "diabetes": ("extrapolate", "scale", "shift"),
}
