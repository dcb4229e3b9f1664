"""Pure rules with no I/O: labels, split, validation, pixels, counts, resources, precision."""
