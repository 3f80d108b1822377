"""Pure core: lifecycle, presets, limits and the state model. No I/O here."""
