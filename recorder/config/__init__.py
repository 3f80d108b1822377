"""Settings: environment variables over an optional TOML file (docs/configuration.md)."""
