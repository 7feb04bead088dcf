"""A simulated consortium on one machine: `qdsn demo`."""
