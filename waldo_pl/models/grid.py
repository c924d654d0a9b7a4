"""The networks' grid: four 2x poolings, so pages are run with sides that are multiples of 16."""

MULTIPLE = 16
