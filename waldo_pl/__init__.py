"""Find Waldo: pages -> crops -> network -> loss -> heatmap -> answer."""

from waldo_pl.errors import UserError

__all__ = ["UserError"]
