"""Models: loading policies and processors, and building tiny local ones."""

from mmrft.models.processors import register_image_only_processors

register_image_only_processors()
# the tiny builders of the other families register their torchvision-free processor classes on import
import mmrft.models.builders  # noqa: E402,F401
