"""Models: loading policies and processors, and building tiny local ones."""

from mmrft.models.processors import register_image_only_processors

register_image_only_processors()
