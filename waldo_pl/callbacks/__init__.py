"""Lightning callbacks that bring the search into training: whole-page validation and hard-negative mining."""

from waldo_pl.callbacks.mining import HardNegativeMining
from waldo_pl.callbacks.page_validation import PageValidation

__all__ = ["HardNegativeMining", "PageValidation"]
