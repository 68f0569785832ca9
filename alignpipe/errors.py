"""The pipeline's own error types (no imports: every other module of alignpipe may use them)."""


class ConfigError(ValueError):
    """A config value that the pipeline cannot run with; the message names the key."""
