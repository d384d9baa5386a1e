"""Rendering: cameras, SH lighting, the rasterizer and renderer, photo sampling, UV texture baking,
mesh I/O and landmark pose fits.

Public names are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_EXPORTS = {
    "PerspectiveCamera": "cameras",
    "Pose": "cameras",
    "WeakPerspectiveCamera": "cameras",
    "fit_sh": "lighting",
    "shade_sh": "lighting",
    "read_ply": "mesh_io",
    "read_png": "mesh_io",
    "write_obj": "mesh_io",
    "write_ply": "mesh_io",
    "write_png": "mesh_io",
    "PoseFit": "pose_fit",
    "fit_weak_perspective": "pose_fit",
    "Fragments": "rasterizer",
    "RasterSettings": "rasterizer",
    "interpolate": "rasterizer",
    "rasterize": "rasterizer",
    "MeshRenderer": "renderer",
    "RenderOutput": "renderer",
    "RenderSettings": "renderer",
    "composite": "renderer",
    "render_mesh": "renderer",
    "region_mask": "sampling",
    "sample_image": "sampling",
    "sample_vertex_colors": "sampling",
    "vertex_visibility": "sampling",
    "BakeSettings": "texture",
    "TextureBake": "texture",
    "UVBaker": "texture",
    "UVBakerCache": "texture",
    "bake_texture": "texture",
    "dilate_texture": "texture",
    "sample_texture": "texture",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .cameras import (  # noqa: F401
        PerspectiveCamera,
        Pose,
        WeakPerspectiveCamera,
    )
    from .lighting import (  # noqa: F401
        fit_sh,
        shade_sh,
    )
    from .mesh_io import (  # noqa: F401
        read_ply,
        read_png,
        write_obj,
        write_ply,
        write_png,
    )
    from .pose_fit import (  # noqa: F401
        PoseFit,
        fit_weak_perspective,
    )
    from .rasterizer import (  # noqa: F401
        Fragments,
        RasterSettings,
        interpolate,
        rasterize,
    )
    from .renderer import (  # noqa: F401
        MeshRenderer,
        RenderOutput,
        RenderSettings,
        composite,
        render_mesh,
    )
    from .sampling import (  # noqa: F401
        region_mask,
        sample_image,
        sample_vertex_colors,
        vertex_visibility,
    )
    from .texture import (  # noqa: F401
        BakeSettings,
        TextureBake,
        UVBaker,
        UVBakerCache,
        bake_texture,
        dilate_texture,
        sample_texture,
    )
