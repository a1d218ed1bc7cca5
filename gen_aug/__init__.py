"""genaug: class-conditional image generators for scarce labelled data, synthesized at scale."""

__version__ = "0.1.0"
