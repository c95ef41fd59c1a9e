"""The error predicting raises for what a user can get wrong (model file, metadata, image)."""

from __future__ import annotations


class PredictError(ValueError):
    """A model file, its metadata, an image or an option that predicting cannot use; the
    message names the file or field."""
