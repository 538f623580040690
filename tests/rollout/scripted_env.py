"""A scripted environment for the multi-turn tests: it treats every assistant turn as a call to a zoom tool and
answers with a crop of the sample's image, until `turns` crops were returned; then the next turn is the answer.
A random tiny model never writes a real tool call, so this drives the loop through its multi-turn paths."""

from mmrft.tools import Observation, register_environment


@register_environment("test_always_zooms")
class AlwaysZooms:
    """`vary`: the number of crops depends on the sample (1 + its id's last digit % turns), so trajectories of one
    batch (and of different ranks) have different turn counts."""

    def __init__(self, turns: int = 2, size: int = 56, vary: bool = False):
        self.max_turns, self.turns, self.size, self.vary, self.k = turns, turns, size, vary, 0

    def reset(self, sample, ctx):
        self.ctx, self.k = ctx, 0
        if self.vary:
            self.turns = 1 + int(sample["id"][-1]) % self.max_turns
        return Observation()

    def step(self, text):
        self.k += 1
        if self.k > self.turns:
            return Observation(done=True)
        s = self.size
        crop = self.ctx.images[0].crop((0, 0, s, s)).resize((s * self.k, s))  # a different size each turn
        self.ctx.returned.append(crop)
        return Observation(text=f"zoomed {self.k}", images=[crop],
                           info={"calls": [{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, s, s]},
                                            "error": None}]})

    @staticmethod
    def tool_schemas():
        return [{"type": "function", "function": {"name": "zoom_in", "description": "Zoom in on a box.",
                                                  "parameters": {"type": "object", "properties": {}}}}]
