"""Lightning callbacks that bring the search into training (whole-page validation, hard-negative mining), and the
run's config kept in its checkpoints."""

from waldo_pl.callbacks.mining import HardNegativeMining
from waldo_pl.callbacks.page_validation import PageValidation
from waldo_pl.callbacks.run_config import RunConfig

__all__ = ["HardNegativeMining", "PageValidation", "RunConfig"]
