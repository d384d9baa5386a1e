"""facecraft.sdk: face model, mesh, renderer, runtime and server."""
