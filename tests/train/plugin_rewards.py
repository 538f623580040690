"""A user's own reward, registered by name with `@register_reward` when the module is imported (named in a config's
`imports:`): the documented extension point, which the grading worker process must honour too."""

from mmrft.rewards import register_reward


@register_reward("plugin_shorter_is_better")
def plugin_shorter_is_better(completion: str, sample: dict) -> float:
    """Varies with the completion's length, so groups have a reward spread."""
    return -min(len(completion), 100) / 100.0
