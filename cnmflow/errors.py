"""One error family for bad input, so callers (CLI, flow) can fail fast and never retry it."""


class InputError(ValueError):
    """Bad user input: a movie file, a series, or a parameter. The message names the culprit and the fix."""


class MovieError(InputError):
    """A movie file or a movie series cannot be used as given."""


class ParameterError(InputError):
    """A parameter value, parameters file or combination of parameters is not allowed."""
