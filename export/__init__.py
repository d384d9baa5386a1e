"""facecraft.export: ONNX / TensorRT export and model packages (builds on facecraft.training)."""

__all__: list[str] = []
