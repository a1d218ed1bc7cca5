"""The `genaug` command: a thin click layer that parses options, calls one library function, prints a summary."""

from __future__ import annotations

import click

from gen_aug import __version__
from gen_aug.errors import GenaugError


class GenaugGroup(click.Group):
    """Turns library errors into click's one-line `Error: ...` and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GenaugError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=GenaugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genaug")
def main():
    """Train class-conditional image generators on small labelled sets and synthesize labelled images at scale."""


@main.command("data")
@click.argument("spec", metavar="SPEC")
def data_command(spec):
    """Load a data set and print its size, image shape and per-class counts.

    SPEC is KIND:PATH[?OPTIONS], KIND one of builtin, folder, npz, idx; OPTIONS are
    split=train|val|test, limit_per_class=K, resolution=R, channels=1|3 joined by '&'.

    \b
    Examples:
      genaug data builtin:digits
      genaug data 'idx:../shared/data/mnist-t10k?split=test'
      genaug data 'npz:../shared/data/retinamnist/retinamnist.npz?split=train&limit_per_class=50'
      genaug data 'folder:scans/?resolution=64&channels=1'
    """
    from gen_aug.data import describe, load_data

    click.echo(describe(load_data(spec)))
