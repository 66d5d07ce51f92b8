"""The one error type a user sees: bad input, reported as a single line."""


class ConfigError(ValueError):
  """A config field or input path is wrong; the message names the field, the value and the fix."""
