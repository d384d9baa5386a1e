"""Request building and call plumbing shared by the blocking and the asyncio clients
(:mod:`facecraft.sdk.client`, :mod:`facecraft.sdk.client_async`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from ._proto import facecraft_pb2 as pb
from .client_types import Face, FaceCraftRpcError, ReconstructOptions, RetryPolicy
from .errors import FaceCraftError, InvalidInputError

__all__ = ["PhotoInput", "SidecarInput", "PemInput"]

#: A photo: a path, or the file's bytes.
PhotoInput = str | os.PathLike | bytes | bytearray | memoryview
#: A rig sidecar: a path, its JSON text or bytes, or the parsed dict.
SidecarInput = str | os.PathLike | bytes | bytearray | dict | None
#: PEM data: bytes, or a file.
PemInput = bytes | str | os.PathLike | None


def _photo_bytes(photo: PhotoInput) -> tuple[bytes, str]:
    if isinstance(photo, (bytes, bytearray, memoryview)):
        return bytes(photo), ""
    if isinstance(photo, (str, os.PathLike)):
        p = Path(photo)
        try:
            return p.read_bytes(), p.name
        except OSError as e:
            raise FaceCraftError(f"cannot read {p}: {e.strerror or e}") from None
    raise InvalidInputError(f"expected a photo as a path or bytes, got {type(photo).__name__}")


def _batch_request(photos: Iterable[PhotoInput | tuple[str, PhotoInput]],
                   options: ReconstructOptions) -> pb.ReconstructBatchRequest:
    req = pb.ReconstructBatchRequest(options=options.to_proto())
    for item in photos:
        pid, photo = item if isinstance(item, tuple) else (None, item)
        data, name = _photo_bytes(photo)
        req.photos.add(data=data, id=pid if pid is not None else name)
    return req


def _register_request(glb: bytes | str | os.PathLike, sidecar: SidecarInput, name: str | None,
                      overwrite: bool) -> pb.RegisterRigRequest:
    if isinstance(glb, (str, os.PathLike)):
        path = Path(glb)
        if sidecar is None:  # NAME.glb -> NAME.rig.json (facecraft.sdk.rigs.rig.sidecar_path)
            sidecar = path.with_name(path.name.rsplit(".", 1)[0] + ".rig.json")
        try:
            glb = path.read_bytes()
        except OSError as e:
            raise FaceCraftError(f"cannot read {path}: {e.strerror or e}") from None
    elif not isinstance(glb, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"expected glb as a path or bytes, got {type(glb).__name__}")
    if sidecar is None:
        raise InvalidInputError("give the sidecar (a path, its JSON text or a dict) with GLB "
                                "bytes")
    if isinstance(sidecar, dict):
        text = json.dumps(sidecar)
    elif isinstance(sidecar, (bytes, bytearray)):
        text = bytes(sidecar).decode("utf-8")
    elif isinstance(sidecar, os.PathLike) or (isinstance(sidecar, str)
                                              and not sidecar.lstrip().startswith(("{", "["))):
        try:
            text = Path(sidecar).read_text(encoding="utf-8")
        except OSError as e:
            raise FaceCraftError(f"cannot read {str(sidecar)[:200]}: {e.strerror or e}") from None
    else:
        text = str(sidecar)
    return pb.RegisterRigRequest(glb=bytes(glb), sidecar_json=text, name=name or "",
                                 overwrite=overwrite)


def _fit_request(rig: str, photo: PhotoInput | None, face: Face | None, texture: bool,
                 texture_size: int, include_glb: bool, source: str | None
                 ) -> pb.FitRigRequest:
    if (photo is None) == (face is None):
        raise InvalidInputError("give exactly one of photo (a path or bytes) and face (a Face "
                                "of an earlier reconstruct, with vertex_colors for a texture)")
    req = pb.FitRigRequest(rig=rig, omit_texture=not texture,
                           texture_size=texture_size if texture else 0,
                           include_glb=include_glb)
    if photo is not None:
        data, name = _photo_bytes(photo)
        req.photo = data
        req.source = source if source is not None else name
    else:
        assert face is not None
        shape = req.reconstruction
        shape.neutral_vertices.extend(np.asarray(face.neutral_vertices, np.float32).ravel()
                                      .tolist())
        if face.vertex_colors is not None:
            shape.vertex_colors.extend(np.asarray(face.vertex_colors, np.float32).ravel()
                                       .tolist())
        shape.expression.extend(np.asarray(face.coefficients.expression, np.float32).ravel()
                                .tolist())
        if source is not None:
            req.source = source
    return req


def _read_pem(value: PemInput) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


@dataclass(frozen=True)
class _Config:
    target: str
    token: str | None = field(default=None, repr=False)
    tls: bool = False
    root_certificates: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    retry: RetryPolicy = RetryPolicy()
    max_message_bytes: int = 64 * 2 ** 20

    def channel_options(self) -> list[tuple[str, int]]:
        return [("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes)]

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not (self.tls or self.root_certificates or self.client_cert):
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates,
                                            private_key=self.client_key,
                                            certificate_chain=self.client_cert)

    def metadata(self, request_id: str | None) -> list[tuple[str, str]]:
        md = []
        if self.token:
            md.append(("authorization", f"Bearer {self.token}"))
        if request_id:
            md.append(("x-request-id", request_id))
        return md


def _config(target: str, token: str | None, tls: bool, root_certificates: PemInput,
            client_cert: PemInput, client_key: PemInput, timeout_s: float, retry: RetryPolicy,
            max_message_mb: float) -> _Config:
    if (client_cert is None) != (client_key is None):
        raise InvalidInputError("client_cert and client_key go together (mutual TLS)")
    if timeout_s <= 0:
        raise InvalidInputError(f"timeout_s must be > 0 seconds, got {timeout_s}")
    return _Config(target=target, token=token, tls=tls,
                   root_certificates=_read_pem(root_certificates),
                   client_cert=_read_pem(client_cert), client_key=_read_pem(client_key),
                   timeout_s=float(timeout_s), retry=retry,
                   max_message_bytes=int(max_message_mb * 2 ** 20))


def _rpc_error(e: grpc.RpcError) -> FaceCraftRpcError:
    code = e.code() if hasattr(e, "code") else None
    details = e.details() if hasattr(e, "details") else str(e)
    rid = ""
    try:
        for k, v in (e.trailing_metadata() or ()):
            if k == "x-request-id":
                rid = v
    except Exception:  # noqa: BLE001 - metadata is a nicety
        pass
    return FaceCraftRpcError(code.name if code is not None else "UNKNOWN", details or "", rid)


def _unavailable(e: grpc.RpcError) -> bool:
    return hasattr(e, "code") and e.code() == grpc.StatusCode.UNAVAILABLE

