"""Golden side of the co-simulation: parameter-memory layout, stream, expected image."""
