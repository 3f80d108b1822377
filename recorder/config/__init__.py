"""Settings: environment variables over an optional TOML file (SPEC section 3)."""
