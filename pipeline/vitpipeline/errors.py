"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class PipelineError(RuntimeError):
    """A run that cannot go on, with a message naming the cause."""


class InputError(PipelineError):
    """Bad input data: missing paths, no usable images, unknown labels."""


class ResourceError(PipelineError):
    """The cluster can never satisfy what the config asks for."""


class StorageError(PipelineError):
    """Storage refused the run for good (retries spent): the field, the object, S3's reason."""
