"""mmrft: reinforcement fine-tuning of multimodal LLMs with verifiable rewards."""

__version__ = "0.1.0"


def _register() -> None:
    # Importing mmrft makes AutoProcessor resolve the image-only processors saved with tiny models.
    import mmrft.models  # noqa: F401


_register()
