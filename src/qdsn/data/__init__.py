"""The manufacturer's quality data: the whole-process data model and its validation."""
