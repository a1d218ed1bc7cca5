"""The reader's home before outputs had a package of their own: `from gen_aug.synthesis.reader import
SyntheticImages` in code written then still works. New code imports from gen_aug.output."""

from gen_aug.output.reader import SyntheticImages, load_synthetic

__all__ = ["SyntheticImages", "load_synthetic"]
