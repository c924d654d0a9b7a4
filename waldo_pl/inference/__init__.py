"""From a page to the answer: one search (log-odds heatmap, Waldo's position, confidence and box), and the
files and pictures that show it, apart from the search."""

from waldo_pl.inference.answer import Spot, distance_to_boxes, find_spots, page_outcome
from waldo_pl.inference.search import SearchSettings, search

__all__ = ["SearchSettings", "Spot", "distance_to_boxes", "find_spots", "page_outcome", "search"]
