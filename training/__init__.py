"""facecraft.training: networks, losses, data and training loops (builds on facecraft.sdk)."""

__all__: list[str] = []
