"""`python -m gen_aug` is the same as the `genaug` command."""

from gen_aug.cli import main

if __name__ == "__main__":
    main()
