"""ndevgan's built-in plugins, one module each, imported lazily through registry.toml."""
