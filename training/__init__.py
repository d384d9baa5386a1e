"""facecraft.training: networks, losses, data and training loops (builds on facecraft.sdk)."""

from .backbones import get_backbone, list_backbones, mobilenet_v2, resnet18, resnet34, resnet50
from .eval_regressor import RegressorEvalSettings, RegressorReport
from .eval_texture import TextureReport, TextureRow, evaluate_texture, write_texture_report
from .face_recognition import (
    DLIB_FACE_CHIP_SIZE,
    DLIB_SAME_PERSON_THRESHOLD,
    DlibFaceDescriptor,
    DlibModelUnavailableError,
    dlib_face_recognition_model_path,
    load_dlib_face_descriptor,
)
from .graph_conv import ChebConv, GraphResample, MeshGraphBuffers, set_graph_form
from .losses import LossWeights, combine, psnr, ssim
from .photo_data import PhotoFaces, PrepareSettings, PrepareSummary, prepare_photos
from .recognizers import FaceRecognizer, identity_similarity, list_recognizers, load_recognizer
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
from .regressor_config import RegressorTrainConfig
from .synthetic import (
    CachedSyntheticFaces,
    SyntheticFace,
    SyntheticFaces,
    SyntheticSettings,
    template_translation,
)
from .texture_config import TextureTrainConfig, ablation_configs
from .texture_io import load_texture_nets, save_texture_nets
from .texture_nets import (
    FineTextureNet,
    FineTextureOutput,
    PatchDiscriminator,
    TextureCombiner,
    TextureDecoder,
    TextureNetConfig,
    TextureRefiner,
)
from .train_regressor import train_regressor
from .train_texture import train_texture

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
    "RegressorEvalSettings",
    "RegressorReport",
    "TextureReport",
    "TextureRow",
    "evaluate_texture",
    "write_texture_report",
    "ChebConv",
    "GraphResample",
    "MeshGraphBuffers",
    "set_graph_form",
    "PhotoFaces",
    "PrepareSettings",
    "PrepareSummary",
    "prepare_photos",
    "FaceRecognizer",
    "identity_similarity",
    "list_recognizers",
    "load_recognizer",
    "FineTextureNet",
    "FineTextureOutput",
    "PatchDiscriminator",
    "TextureCombiner",
    "TextureDecoder",
    "TextureNetConfig",
    "TextureRefiner",
    "RegressorTrainConfig",
    "train_regressor",
    "TextureTrainConfig",
    "ablation_configs",
    "load_texture_nets",
    "save_texture_nets",
    "train_texture",
]
