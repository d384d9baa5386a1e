"""Synthetic training faces with exact ground truth, rendered from any morphable model.

Deng et al. (2019) train the coefficient regressor on photos only; rendered faces whose
coefficients, pose and lighting are known exactly are a cheap complement (pre-training, sanity
checks, ablations). Every sample is drawn from a :class:`~facecraft.sdk.MorphableModel` and
drawn by the project's own renderer (:func:`facecraft.sdk.render.renderer.render_mesh`), so the
images
follow exactly the conventions the regressor is trained and evaluated with.

Camera and crop
---------------
The camera is :meth:`PerspectiveCamera.paper(image_size)
<facecraft.sdk.render.cameras.PerspectiveCamera.paper>`: 1015 px focal length at 224 px, 1 m from
the
world origin on +Z. :data:`~facecraft.sdk.photo.align.CROP_TEMPLATE_224` is this camera's
projection of
the starter model's mean five landmarks shifted 25 px up, so a photo aligned to the template
looks like a render at zero pose. A face at zero translation would land 25 px too low; 25 px is
``25 / 1015`` m (24.6 mm) at 1 m, but the landmarks are about 0.91 m from the camera, so the
shift that puts them on the template is about ``25 * 0.91 / 1015`` = 22.4 mm (``25 / 1015`` m
would overshoot by 2.5 px). :func:`template_translation` solves for it exactly (a linear least
squares fit of the model's mean five landmarks onto the template); for the starter model it is
``(0, +0.02235, +0.0019)`` m and leaves every point within 0.8 px of the template.

Ground truth
------------
A sample's vertices are ``p_world = R(angles) p_model + t``
(:class:`~facecraft.sdk.render.cameras.Pose`),
``p_model = S_mean + I c_i + E c_e``. ``translation`` is that *absolute* world translation in
metres::

    t = t0 + (c - R c) + jitter

where ``t0`` is :attr:`SyntheticSettings.base_translation` (default: :func:`template_translation`)
and ``c`` the centre of the bounding box of the model's mean 68 landmarks (model frame): the head
turns about its face, as an aligned crop keeps a turned face centred, instead of about the
model's origin (which would swing a 60-degree profile out of the frame). ``angles`` are
``(pitch, yaw, roll)`` radians (:func:`~facecraft.sdk.render.cameras.euler_to_matrix`).
``lighting`` is the renderer's 27-coefficient SH offset from
:data:`~facecraft.sdk.render.lighting.DEFAULT_SH_INIT` (channel-major). ``landmarks2d`` are the
projections of ``landmarks3d`` (occluded ones included). Albedo is clamped to [0, 1] for the
render only; the coefficients are returned as drawn.

Determinism
-----------
Sample ``i`` of a dataset seeded ``seed`` depends only on ``(seed, i)``, the settings, the model
and the background list: its random numbers come from ``numpy.random.SeedSequence([seed, i])``,
split into independent streams for the face, the background and the augmentations (changing the
background mode leaves the face unchanged). The result is the same in every call and process.
``dataset[i]`` is ``render_batch([i])``; inside a larger batch a sample can differ from it by
float round-off (about 1e-6: BLAS results depend on the batch shape), never in its parameters.

Colours are those of the renderer: the albedo as the model stores it, times SH irradiance (like
Deng et al., no sRGB conversion), composited over a background photo as the file stores it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.photo.align import CROP_SIZE, CROP_TEMPLATE_224, five_from_68
from facecraft.sdk.photo.image_io import read_image
from facecraft.sdk.render.cameras import PerspectiveCamera, Pose
from facecraft.sdk.render.lighting import DEFAULT_SH_INIT, SH_NUM_BANDS
from facecraft.sdk.render.renderer import RenderSettings, render_mesh
from facecraft.sdk.render.sampling import region_mask

__all__ = [
    "BACKGROUND_MODES",
    "SyntheticSettings",
    "SyntheticFace",
    "SyntheticFaces",
    "CachedSyntheticFaces",
    "template_translation",
]

#: Background modes: ``"auto"`` = photos when given, else procedural noise (a quarter flat).
BACKGROUND_MODES = ("auto", "photos", "noise", "flat")

#: Flat skin tones for models without albedo, interpolated at random (model colour space).
_SKIN_LIGHT = np.array([0.78, 0.57, 0.46], np.float32)
_SKIN_DARK = np.array([0.33, 0.21, 0.15], np.float32)

_MANIFEST = "manifest.json"
_CACHE_VERSION = 1


def _range(v: tuple[float, float], name: str, lo: float = -math.inf,
           hi: float = math.inf) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in v)
    except (TypeError, ValueError):
        raise InvalidInputError(f"expected {name} a (low, high) pair, got {v!r}") from None
    if not lo <= a <= b <= hi:
        raise InvalidInputError(f"expected {name} = (low, high) with {lo} <= low <= high <= {hi},"
                                f" got {v!r}")
    return a, b


@dataclass(frozen=True)
class SyntheticSettings:
    """What a synthetic sample looks like. Change fields with ``dataclasses.replace``.

    Attributes:
        image_size: square image side in pixels (the camera is ``PerspectiveCamera.paper`` at
            this size, the crop convention of the regressor).
        identity_sigma: identity coefficients ~ N(0, sigma^2) (the bases are unit-variance).
        expression_sigma: expression coefficients ~ N(0, sigma^2) for ``"pca"`` models.
        expression_active_prob: for ``"blendshape"`` models each weight is non-zero with this
            probability, then U(0, 1).
        albedo_sigma: albedo coefficients ~ N(0, sigma^2); models without albedo get a flat
            random skin tone and zero-width ``albedo`` ground truth.
        yaw_max_deg, pitch_max_deg, roll_max_deg: angles are uniform in ``[-max, max]`` degrees.
        translation_jitter: ``(x, y, z)`` metres; uniform ``[-j, j]`` added to the translation
            (z moves the face nearer or further: +-0.03 m is about +-3 % in scale). The
            defaults keep the mean face's 68 landmarks in the frame at every pose within the
            default maxima (random identities and expressions can push the chin a few pixels
            out at the most extreme poses).
        base_translation: ``(x, y, z)`` metres of the face at zero pose, or None for
            :func:`template_translation` of the model (five landmarks on the crop template).
        ambient_range: offset added to the SH band-0 init (0.8) of all channels, uniform.
        directional_max: a white directional (band-1) light of strength uniform in
            ``[0, directional_max] * band-0`` from a random direction in front of the face
            (<= 0.5 keeps the irradiance non-negative on the lit hemisphere).
        second_order_sigma: bands 4-8 ~ N(0, sigma^2) times band-0.
        light_tint_sigma: each channel's nine coefficients are scaled by 1 + N(0, sigma^2).
        background: one of :data:`BACKGROUND_MODES`.
        photo_crop_range: background photo crops have a side of this fraction of the photo's
            shorter side, uniform; crops are flipped half of the time.
        brightness: the image is multiplied by U(1 - b, 1 + b).
        contrast: ``(image - 0.5) * U(1 - c, 1 + c) + 0.5``.
        noise_sigma_max: additive gaussian pixel noise of sigma U(0, max).
        blur_prob: probability of a gaussian blur of sigma U(0.3, blur_sigma_max) pixels.
        blur_sigma_max: see ``blur_prob``.
        jpeg_prob: probability of a JPEG round trip (OpenCV) at a quality in ``jpeg_quality``.
        jpeg_quality: ``(low, high)`` JPEG quality, 1..100.
        return_vertices: also return the (B, V, 3) world vertices (memory: V x 12 bytes each).
        render: the renderer's settings.
    """

    image_size: int = CROP_SIZE
    identity_sigma: float = 1.0
    expression_sigma: float = 1.0
    expression_active_prob: float = 0.15
    albedo_sigma: float = 1.0
    yaw_max_deg: float = 60.0
    pitch_max_deg: float = 25.0
    roll_max_deg: float = 15.0
    translation_jitter: tuple[float, float, float] = (0.005, 0.005, 0.03)
    base_translation: tuple[float, float, float] | None = None
    ambient_range: tuple[float, float] = (-0.2, 0.45)
    directional_max: float = 0.45
    second_order_sigma: float = 0.05
    light_tint_sigma: float = 0.05
    background: str = "auto"
    photo_crop_range: tuple[float, float] = (0.35, 1.0)
    brightness: float = 0.15
    contrast: float = 0.15
    noise_sigma_max: float = 0.02
    blur_prob: float = 0.2
    blur_sigma_max: float = 1.2
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[float, float] = (40, 95)
    return_vertices: bool = False
    render: RenderSettings = field(default_factory=RenderSettings)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 4096:
            raise InvalidInputError(f"expected image_size an int in [16, 4096] pixels, got "
                                    f"{self.image_size!r}")
        for name in ("identity_sigma", "expression_sigma", "albedo_sigma", "directional_max",
                     "second_order_sigma", "light_tint_sigma", "noise_sigma_max",
                     "brightness", "contrast"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise InvalidInputError(f"expected {name} a finite number >= 0, got {v!r}")
        for name in ("brightness", "contrast"):
            if getattr(self, name) >= 1:
                raise InvalidInputError(f"expected {name} < 1, got {getattr(self, name)}")
        for name in ("expression_active_prob", "blur_prob", "jpeg_prob"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v <= 1):
                raise InvalidInputError(f"expected {name} a probability in [0, 1], got {v!r}")
        for name in ("yaw_max_deg", "pitch_max_deg", "roll_max_deg"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v < 90):
                raise InvalidInputError(f"expected {name} in [0, 90) degrees, got {v!r}")
        if not self.blur_sigma_max >= 0.3:
            raise InvalidInputError(f"expected blur_sigma_max >= 0.3 px, got "
                                    f"{self.blur_sigma_max}")
        jit = tuple(float(x) for x in self.translation_jitter)
        if len(jit) != 3 or min(jit) < 0 or max(jit) > 0.2:
            raise InvalidInputError(f"expected translation_jitter three metres in [0, 0.2], got "
                                    f"{self.translation_jitter!r}")
        set_(self, "translation_jitter", jit)
        if self.base_translation is not None:
            base = tuple(float(x) for x in self.base_translation)
            if len(base) != 3 or not all(math.isfinite(x) for x in base):
                raise InvalidInputError(f"expected base_translation (x, y, z) metres or None, "
                                        f"got {self.base_translation!r}")
            set_(self, "base_translation", base)
        set_(self, "ambient_range", _range(self.ambient_range, "ambient_range", -0.8))
        set_(self, "photo_crop_range", _range(self.photo_crop_range, "photo_crop_range",
                                              0.01, 1.0))
        set_(self, "jpeg_quality", _range(self.jpeg_quality, "jpeg_quality", 1, 100))
        if self.background not in BACKGROUND_MODES:
            raise InvalidInputError(f"expected background one of {BACKGROUND_MODES}, got "
                                    f"{self.background!r}")
        if not isinstance(self.render, RenderSettings):
            raise InvalidInputError(f"expected render a RenderSettings, got "
                                    f"{type(self.render).__name__}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (what the cache manifest stores)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SyntheticSettings:
        """Inverse of :meth:`to_json`."""
        d = dict(d)
        d["render"] = RenderSettings(**d.get("render", {}))
        for k in ("translation_jitter", "base_translation", "ambient_range", "photo_crop_range",
                  "jpeg_quality"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


#: Per-sample fields of :class:`SyntheticFace`, in order (``vertices`` is optional).
_FIELDS = ("image", "mask", "skin_mask", "identity", "expression", "albedo", "angles",
           "translation", "lighting", "landmarks2d", "landmarks3d", "vertices")


@dataclass(frozen=True, eq=False)
class SyntheticFace:
    """A batch of synthetic faces and their exact ground truth (CPU or the dataset's device).

    Attributes:
        image: (B, 3, H, W) float32 in [0, 1]: the lit face over the background, augmented.
        mask: (B, H, W) bool projection mask (pixels the mesh covers).
        skin_mask: (B, H, W) bool: pixels of the model's ``"skin"`` region (the projection mask
            when the model has none).
        identity: (B, Ki) float32 unit-variance identity coefficients.
        expression: (B, Ke) float32 expression coefficients (blendshape weights in [0, 1] or
            PCA coefficients, per ``model.expression_kind``).
        albedo: (B, Ka) float32 albedo coefficients; (B, 0) for a model without albedo.
        angles: (B, 3) float32 ``(pitch, yaw, roll)`` radians (``R = Rz Ry Rx``).
        translation: (B, 3) float32 metres, absolute world translation
            (``p_world = R p_model + t``; see the module docstring).
        lighting: (B, 27) float32 SH coefficients, channel-major, offsets from the ambient init.
        landmarks2d: (B, 68, 2) float32 pixels (x right, y down, pixel centres at +0.5).
        landmarks3d: (B, 68, 3) float32 metres, world frame.
        vertices: (B, V, 3) float32 metres, world frame, or None unless
            ``SyntheticSettings.return_vertices``.
    """

    image: torch.Tensor
    mask: torch.Tensor
    skin_mask: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor
    albedo: torch.Tensor
    angles: torch.Tensor
    translation: torch.Tensor
    lighting: torch.Tensor
    landmarks2d: torch.Tensor
    landmarks3d: torch.Tensor
    vertices: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The batched fields by name (``vertices`` left out when None)."""
        return {k: getattr(self, k) for k in _FIELDS if getattr(self, k) is not None}

    def sample(self, i: int) -> dict[str, torch.Tensor]:
        """Sample ``i`` as a dict of tensors without the batch dimension."""
        return {k: v[i] for k, v in self.as_dict().items()}

    def to(self, device: torch.device | str) -> SyntheticFace:
        """The batch on another device."""
        return SyntheticFace(**{k: v.to(device) for k, v in self.as_dict().items()})


def template_translation(model: MorphableModel, image_size: int = CROP_SIZE) -> np.ndarray:
    """The translation that puts the model's mean five landmarks on the crop template.

    Least squares over the five points of :func:`~facecraft.sdk.photo.align.five_from_68` under
    ``PerspectiveCamera.paper(image_size)`` at zero rotation (linear in ``t`` after multiplying
    out the depth). About ``(0, 0.0224, 0.002)`` m for the starter model; see the module
    docstring for why it is not ``25 / 1015`` m.

    Returns:
        (3,) float64 metres, world frame.
    """
    cam = PerspectiveCamera.paper(image_size)
    (fx, fy), (cx, cy), dist = cam.focal_px, cam.principal_point, cam.camera_distance
    pts = five_from_68(model.landmarks(model.mean_shape)).astype(np.float64)
    tpl = CROP_TEMPLATE_224 * (image_size / CROP_SIZE)
    du, dv = tpl[:, 0] - cx, tpl[:, 1] - cy
    depth = dist - pts[:, 2]
    zeros = np.zeros(5)
    a = np.concatenate([np.stack([np.full(5, fx), zeros, du], 1),
                        np.stack([zeros, np.full(5, fy), -dv], 1)])
    b = np.concatenate([du * depth - fx * pts[:, 0], -fy * pts[:, 1] - dv * depth])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _generators(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent face, background and augmentation streams for sample ``(seed, index)``."""
    children = np.random.SeedSequence([seed, index]).spawn(3)
    return tuple(np.random.Generator(np.random.PCG64(s)) for s in children)


def _load_backgrounds(backgrounds: Sequence[Any], image_size: int) -> list[np.ndarray]:
    """Read background photos (paths or (H, W, 3) float arrays in [0, 1]), shrunk so the
    shorter side is at most twice ``image_size`` (crops are resized to ``image_size`` anyway)."""
    out = []
    for b in backgrounds:
        if isinstance(b, str | os.PathLike):
            rgb = read_image(b).rgb
        else:
            rgb = np.asarray(b, np.float32)
            if rgb.ndim != 3 or rgb.shape[2] != 3:
                raise InvalidInputError(f"expected a background path or an (H, W, 3) array in "
                                        f"[0, 1], got shape {rgb.shape}")
        scale = 2 * image_size / min(rgb.shape[:2])
        if scale < 1:
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(np.clip(rgb, 0, 1), np.float32))
    return out


class SyntheticFaces(Dataset):
    """A deterministic, map-style dataset of rendered faces with exact ground truth.

    ``dataset[i]`` is a dict of tensors without the batch dimension (keys as the fields of
    :class:`SyntheticFace`; CPU), suitable for a ``DataLoader``. Training loops that want speed
    call :meth:`render_batch` directly (one batched render instead of one per sample).

    Args:
        model: any morphable model (its bases decide the coefficient sizes).
        settings: see :class:`SyntheticSettings`.
        length: the number of samples, > 0.
        seed: a non-negative int; sample ``i`` depends only on ``(seed, i)``.
        backgrounds: background photos (paths, or (H, W, 3) float arrays in [0, 1] sRGB) for
            ``background="auto"`` / ``"photos"``; read once here.
        device: where to render (the returned dicts are always on the CPU).
    """

    def __init__(self, model: MorphableModel, settings: SyntheticSettings = SyntheticSettings(),
                 *, length: int, seed: int, backgrounds: Sequence[Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        if not isinstance(model, MorphableModel):
            raise InvalidInputError(f"expected model a MorphableModel, got "
                                    f"{type(model).__name__}")
        if not isinstance(settings, SyntheticSettings):
            raise InvalidInputError(f"expected settings a SyntheticSettings, got "
                                    f"{type(settings).__name__}")
        if not isinstance(length, int) or length < 1:
            raise InvalidInputError(f"expected length an int >= 1, got {length!r}")
        if not isinstance(seed, int) or seed < 0:
            raise InvalidInputError(f"expected seed an int >= 0, got {seed!r}")
        self.model = model
        self.settings = settings
        self.length = length
        self.seed = seed
        self.device = torch.device(device)
        self.backgrounds = _load_backgrounds(backgrounds or (), settings.image_size)
        if settings.background == "photos" and not self.backgrounds:
            raise InvalidInputError("background='photos' needs background photos; pass "
                                    "backgrounds=[paths] or use background='noise'")
        self.camera = PerspectiveCamera.paper(settings.image_size)
        self.layer = model.to_torch(self.device)
        self.triangles = self.layer.triangles
        skin = model.regions.get("skin")
        self.skin_ids = (None if skin is None or not len(skin)
                         else torch.from_numpy(skin.astype(np.int64)).to(self.device))
        base = (template_translation(model, settings.image_size)
                if settings.base_translation is None else np.array(settings.base_translation))
        #: (3,) metres: the translation at zero pose and zero jitter.
        self.base_translation = base.astype(np.float64)
        lm = model.landmarks(model.mean_shape).astype(np.float64)
        #: (3,) metres, model frame: the pivot of the head's rotation, the centre of the mean
        #: 68 landmarks' bounding box.
        self.pivot = (lm.min(0) + lm.max(0)) / 2

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not isinstance(index, int | np.integer):
            raise InvalidInputError(f"expected an int index, got {type(index).__name__}")
        index = int(index)
        if index < 0:
            index += self.length
        return self.render_batch([index]).to("cpu").sample(0)

    # ------------------------------------------------------------------ sampling
    def _sample_face(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Coefficients, pose and lighting of one sample (numpy, fixed draw order)."""
        s, m = self.settings, self.model
        ident = rng.normal(0.0, s.identity_sigma, m.num_identity)
        if m.expression_kind == "blendshape":
            active = rng.random(m.num_expression) < s.expression_active_prob
            expr = rng.random(m.num_expression) * active
        else:
            expr = rng.normal(0.0, s.expression_sigma, m.num_expression)
        if m.has_albedo:
            alb = rng.normal(0.0, s.albedo_sigma, m.num_albedo)
            tone = np.zeros(3)
        else:
            alb = np.zeros(0)
            t = rng.random()
            tone = (1 - t) * _SKIN_LIGHT + t * _SKIN_DARK + rng.normal(0.0, 0.02, 3)
        maxima = np.radians([s.pitch_max_deg, s.yaw_max_deg, s.roll_max_deg])
        angles = rng.uniform(-1.0, 1.0, 3) * maxima
        jitter = rng.uniform(-1.0, 1.0, 3) * np.array(s.translation_jitter)
        # lighting: gamma = band-0 (init + ambient), a white directional band-1 light, 2nd order
        g0 = DEFAULT_SH_INIT[0] + rng.uniform(*s.ambient_range)
        direction = rng.normal(size=3)
        direction[2] = abs(direction[2]) + 0.5  # from in front of the face, mostly
        direction /= np.linalg.norm(direction)
        strength = rng.uniform(0.0, s.directional_max) * g0
        gamma = np.zeros(SH_NUM_BANDS)
        gamma[0] = g0
        gamma[1:4] = strength * np.array([-direction[1], direction[2], -direction[0]])
        gamma[4:] = rng.normal(0.0, s.second_order_sigma, 5) * g0
        tint = 1.0 + rng.normal(0.0, s.light_tint_sigma, 3)
        sh = (tint[:, None] * gamma[None, :] - np.array(DEFAULT_SH_INIT)[None, :]).reshape(-1)
        return {"identity": ident, "expression": expr, "albedo": alb, "tone": tone,
                "angles": angles, "jitter": jitter, "lighting": sh}

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        """(S, S, 3) float32 background of one sample."""
        s = self.settings
        size = s.image_size
        mode = s.background
        if mode == "auto":
            mode = "photos" if self.backgrounds else ("flat" if rng.random() < 0.25 else "noise")
        if mode == "photos":
            photo = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            h, w = photo.shape[:2]
            side = max(2, int(round(rng.uniform(*s.photo_crop_range) * min(h, w))))
            side = min(side, h, w)
            y0 = int(rng.integers(0, h - side + 1))
            x0 = int(rng.integers(0, w - side + 1))
            crop = photo[y0:y0 + side, x0:x0 + side]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
            return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp)
        base = rng.uniform(0.05, 0.95, 3).astype(np.float32)
        if mode == "flat":
            grad = rng.normal(0.0, 0.08, (2, 3)).astype(np.float32)
            ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
            img = (base + ramp[:, None, None] * grad[0] + ramp[None, :, None] * grad[1])
            return np.clip(img, 0, 1).astype(np.float32)
        img = np.broadcast_to(base, (size, size, 3)).copy()
        for cells, amp in ((int(rng.integers(2, 6)), 0.35), (int(rng.integers(6, 24)), 0.15)):
            grid = rng.uniform(-amp, amp, (cells, cells, 3)).astype(np.float32)
            img += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        return np.clip(img, 0, 1).astype(np.float32)

    def _augment_params(self, rng: np.random.Generator) -> dict[str, Any]:
        s = self.settings
        p = {"brightness": rng.uniform(1 - s.brightness, 1 + s.brightness),
             "contrast": rng.uniform(1 - s.contrast, 1 + s.contrast),
             "blur": rng.uniform(0.3, s.blur_sigma_max) if rng.random() < s.blur_prob else 0.0,
             "noise_sigma": rng.uniform(0.0, s.noise_sigma_max),
             "jpeg": (int(round(rng.uniform(*s.jpeg_quality)))
                      if rng.random() < s.jpeg_prob else 0)}
        if s.noise_sigma_max > 0:
            size = s.image_size
            p["noise"] = rng.standard_normal((3, size, size), dtype=np.float32)
        return p

    # ----------------------------------------------------------------- rendering
    def render_batch(self, indices: Sequence[int]) -> SyntheticFace:
        """Render samples ``indices`` in one batch (on the dataset's device).

        Args:
            indices: sample ids in ``[0, len(self))``; repeats are allowed.

        Returns:
            :class:`SyntheticFace` with B = ``len(indices)``.
        """
        idx = [int(i) for i in indices]
        if not idx:
            raise InvalidInputError("expected at least one index")
        bad = [i for i in idx if not 0 <= i < self.length]
        if bad:
            raise InvalidInputError(f"indices {bad[:5]} outside [0, {self.length})")
        s, dev = self.settings, self.device
        faces, bgs, augs = [], [], []
        for i in idx:
            g_face, g_bg, g_aug = _generators(self.seed, i)
            faces.append(self._sample_face(g_face))
            bgs.append(self._background(g_bg))
            augs.append(self._augment_params(g_aug))

        def stack(key: str, rows: list[dict[str, Any]] = faces) -> torch.Tensor:
            return torch.from_numpy(np.stack([r[key] for r in rows]).astype(np.float32)).to(dev)

        ident, expr, alb = stack("identity"), stack("expression"), stack("albedo")
        angles, sh = stack("angles"), stack("lighting")
        with torch.no_grad():
            pose0 = Pose.from_euler(angles)
            pivot = torch.tensor(self.pivot, dtype=torch.float32, device=dev)
            base = torch.tensor(self.base_translation, dtype=torch.float32, device=dev)
            translation = base + pivot - pose0.rotation @ pivot + stack("jitter")
            pose = Pose(pose0.rotation, translation)
            verts = self.layer(ident, expr)
            if self.layer.albedo_mean is not None:
                albedo = self.layer.albedo(alb)
            else:
                albedo = stack("tone")[:, None, :].expand_as(verts)
            out = render_mesh(verts, self.triangles, albedo.clamp(0.0, 1.0), camera=self.camera,
                              pose=pose, sh=sh, settings=s.render)
            background = torch.from_numpy(np.stack(bgs)).to(dev)
            image = torch.where(out.mask[..., None], out.image, background).permute(0, 3, 1, 2)
            image = self._augment(image, augs)
            skin = (out.mask if self.skin_ids is None
                    else region_mask(out.fragments, self.triangles, self.skin_ids))
            world = pose.transform(verts)
            lm3d = self.layer.landmarks(world)
            lm2d = self.camera.project(lm3d)[..., :2]
        return SyntheticFace(
            image=image.contiguous(), mask=out.mask, skin_mask=skin, identity=ident,
            expression=expr, albedo=alb, angles=angles, translation=translation, lighting=sh,
            landmarks2d=lm2d, landmarks3d=lm3d,
            vertices=world if s.return_vertices else None)

    def _augment(self, image: torch.Tensor, augs: list[dict[str, Any]]) -> torch.Tensor:
        """Camera-like augmentations of (B, 3, H, W): per-pixel ones first, then blur, noise,
        JPEG. The brightness / contrast pivot is fixed (0.5), so face pixels away from the
        silhouette do not depend on the background."""
        b, _, h, w = image.shape
        dev = image.device

        def col(key: str) -> torch.Tensor:
            return torch.tensor([a[key] for a in augs], dtype=image.dtype,
                                device=dev)[:, None, None, None]

        image = (image * col("brightness") - 0.5) * col("contrast") + 0.5
        sigmas = [a["blur"] for a in augs]
        if any(x > 0 for x in sigmas):
            radius = math.ceil(3 * max(sigmas))
            x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=dev)
            sig = torch.tensor(sigmas, dtype=image.dtype, device=dev)[:, None]
            k = torch.where(sig > 0, torch.exp(-0.5 * (x / sig.clamp(min=1e-3)) ** 2),
                            (x == 0).to(image.dtype).expand(b, -1))
            k = (k / k.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (B * 3, K)
            flat = F.pad(image.reshape(1, b * 3, h, w), (radius,) * 4, mode="replicate")
            flat = F.conv2d(flat, k[:, None, None, :], groups=b * 3)
            flat = F.conv2d(flat, k[:, None, :, None], groups=b * 3)
            image = flat.reshape(b, 3, h, w)
        if "noise" in augs[0]:
            noise = torch.from_numpy(np.stack([a["noise"] for a in augs])).to(dev)
            image = image + noise * col("noise_sigma")
        image = image.clamp(0.0, 1.0)
        if any(a["jpeg"] for a in augs):
            rows = []
            for img, a in zip(image, augs, strict=True):
                if a["jpeg"]:
                    u8 = (img.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
                    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, a["jpeg"]])
                    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
                    img = torch.from_numpy(dec).permute(2, 0, 1).to(dev)
                rows.append(img)
            image = torch.stack(rows)
        return image

    # --------------------------------------------------------------------- cache
    def cache_to_disk(self, folder: str | os.PathLike[str], *, shard_size: int = 512,
                      batch_size: int = 16, image_dtype: str = "float32",
                      progress: bool = True) -> Path:
        """Render every sample once and write them to ``folder`` as ``.npz`` shards.

        ``folder`` gets ``manifest.json`` (settings, seed, length, model name, shard layout)
        and ``shard_00000.npz``... holding the batched fields of :class:`SyntheticFace`.
        Read it back with :class:`CachedSyntheticFaces`.

        Args:
            folder: an empty or new folder.
            shard_size: samples per shard file.
            batch_size: samples rendered at once.
            image_dtype: ``"float32"`` (bit-exact) or ``"uint8"`` (4x smaller, rounded to
                1/255).
            progress: report progress on stderr (tqdm when installed).

        Returns:
            the folder.
        """
        if image_dtype not in ("float32", "uint8"):
            raise InvalidInputError(f"expected image_dtype 'float32' or 'uint8', got "
                                    f"{image_dtype!r}")
        if shard_size < 1 or batch_size < 1:
            raise InvalidInputError(f"expected shard_size and batch_size >= 1, got "
                                    f"{shard_size}, {batch_size}")
        out = Path(folder)
        if out.exists() and any(out.iterdir()):
            raise InvalidInputError(f"cache folder {out} is not empty; give a new folder")
        out.mkdir(parents=True, exist_ok=True)
        shards = []
        n_shards = math.ceil(self.length / shard_size)
        bar = _progress(n_shards * shard_size, progress)
        for k in range(n_shards):
            ids = list(range(k * shard_size, min(self.length, (k + 1) * shard_size)))
            parts: list[dict[str, torch.Tensor]] = []
            for j in range(0, len(ids), batch_size):
                parts.append(self.render_batch(ids[j:j + batch_size]).to("cpu").as_dict())
                bar(len(ids[j:j + batch_size]))
            arrays = {key: torch.cat([p[key] for p in parts]).numpy() for key in parts[0]}
            if image_dtype == "uint8":
                arrays["image"] = np.rint(arrays["image"] * 255).astype(np.uint8)
            name = f"shard_{k:05d}.npz"
            np.savez(out / name, **arrays)
            shards.append({"file": name, "start": ids[0], "count": len(ids)})
        bar(None)
        manifest = {"version": _CACHE_VERSION, "model": self.model.name, "seed": self.seed,
                    "length": self.length, "image_dtype": image_dtype,
                    "settings": self.settings.to_json(),
                    "base_translation": self.base_translation.tolist(), "shards": shards}
        (out / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        return out


def _progress(total: int, enabled: bool):
    """A callable ``step(n)`` (``step(None)`` closes) reporting progress on stderr."""
    if not enabled:
        return lambda n: None
    try:
        from tqdm import tqdm
    except ImportError:
        done = [0]

        def step(n: int | None) -> None:
            if n is None:
                sys.stderr.write("\n")
                return
            done[0] += n
            sys.stderr.write(f"\rsynthetic faces: {done[0]} rendered")
        return step
    bar = tqdm(total=total, desc="synthetic faces", unit="face", file=sys.stderr)

    def step_tqdm(n: int | None) -> None:
        if n is None:
            bar.close()
        else:
            bar.update(n)
    return step_tqdm


class CachedSyntheticFaces(Dataset):
    """Samples written by :meth:`SyntheticFaces.cache_to_disk`, read back.

    ``dataset[i]`` is the same dict as ``SyntheticFaces.__getitem__`` gives (images as float32
    in [0, 1] even when stored as uint8). One shard is held in memory at a time; iterate in
    order (or shuffle within shards) for speed.

    Args:
        folder: the cache folder (with ``manifest.json``).

    Attributes:
        manifest: the parsed ``manifest.json``.
        settings: the :class:`SyntheticSettings` the samples were rendered with.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        path = self.folder / _MANIFEST
        if not path.is_file():
            raise InvalidInputError(f"{self.folder} has no {_MANIFEST}; write one with "
                                    "SyntheticFaces.cache_to_disk(folder)")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("version") != _CACHE_VERSION:
            raise InvalidInputError(f"{path} is cache version {self.manifest.get('version')}, "
                                    f"this code reads version {_CACHE_VERSION}; re-render it")
        self.settings = SyntheticSettings.from_json(self.manifest["settings"])
        self._starts = np.array([s["start"] for s in self.manifest["shards"]], np.int64)
        self._loaded: tuple[int, dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return int(self.manifest["length"])

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        if self._loaded is None or self._loaded[0] != k:
            with np.load(self.folder / self.manifest["shards"][k]["file"]) as z:
                self._loaded = (k, {name: z[name] for name in z.files})
        return self._loaded[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        i = int(index) + (n if int(index) < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"index {index} outside [0, {n})")
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        arrays = self._shard(k)
        j = i - int(self._starts[k])
        out = {}
        for name in _FIELDS:
            if name in arrays:
                a = arrays[name][j]
                if name == "image" and a.dtype == np.uint8:
                    a = a.astype(np.float32) / 255
                out[name] = torch.from_numpy(np.array(a))
        return out
