"""From a page to the answer: heatmap, Waldo's position, confidence and box."""

from waldo_pl.inference.answer import Spot, distance_to_boxes, find_spots, region_box
from waldo_pl.inference.heatmap import page_logits, waldo_probability

__all__ = ["Spot", "distance_to_boxes", "find_spots", "page_logits", "region_box", "waldo_probability"]
