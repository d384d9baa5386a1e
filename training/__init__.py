"""facecraft.training: networks, losses, data and training loops (builds on facecraft.sdk)."""

from .backbones import get_backbone, list_backbones, mobilenet_v2, resnet18, resnet34, resnet50
from .face_recognition import (
    DLIB_FACE_CHIP_SIZE,
    DLIB_SAME_PERSON_THRESHOLD,
    DlibFaceDescriptor,
    DlibModelUnavailableError,
    dlib_face_recognition_model_path,
    load_dlib_face_descriptor,
)
from .losses import LossWeights, combine, psnr, ssim
from .regressor import (
    CoeffLayout,
    CoeffRegressor,
    Coeffs3DMM,
    InputSpec,
    coeff_regressor,
    load_regressor,
    read_regressor_meta,
    save_regressor,
)
from .synthetic import (
    CachedSyntheticFaces,
    SyntheticFace,
    SyntheticFaces,
    SyntheticSettings,
    template_translation,
)

__all__ = [
    "DlibFaceDescriptor",
    "DlibModelUnavailableError",
    "load_dlib_face_descriptor",
    "dlib_face_recognition_model_path",
    "DLIB_FACE_CHIP_SIZE",
    "DLIB_SAME_PERSON_THRESHOLD",
    "LossWeights",
    "combine",
    "psnr",
    "ssim",
    "get_backbone",
    "list_backbones",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v2",
    "CoeffLayout",
    "CoeffRegressor",
    "Coeffs3DMM",
    "InputSpec",
    "coeff_regressor",
    "load_regressor",
    "read_regressor_meta",
    "save_regressor",
    "SyntheticSettings",
    "SyntheticFace",
    "SyntheticFaces",
    "CachedSyntheticFaces",
    "template_translation",
]
