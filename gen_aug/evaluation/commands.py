"""The evaluation command of the `genaug` CLI: `evaluate`, parsing options and calling one function."""

from __future__ import annotations

import click

from gen_aug.evaluation.options import ARMS, EvaluationOptions


def _seed_list(ctx, param, value):
    """'0,1,2' -> (0, 1, 2), for --seeds."""
    if value is None:
        return None
    try:
        seeds = tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0:
        raise click.BadParameter(f"{value!r} (expected whole numbers >= 0 separated by commas, e.g. 0,1,2)")
    return seeds


def _tune_grid(ctx, param, value):
    """('swap_probability=0.3,0.5',) -> {'swap_probability': (0.3, 0.5)}, for --tune; None when not given."""
    grid = {}
    for item in value:
        key, _, values = item.partition("=")
        try:
            grid[key.strip()] = tuple(float(number) for number in values.split(","))
        except ValueError:
            raise click.BadParameter(f"{item!r} (expected SETTING=V,V,..., e.g. swap_probability=0.3,0.5)") from None
    return grid or None


def _arm_list(ctx, param, value):
    """'real,classical' -> ('real', 'classical'), for --arms."""
    arms = tuple(item.strip() for item in value.split(",") if item.strip())
    unknown = [arm for arm in arms if arm not in ARMS]
    if not arms or unknown or "real" not in arms or len(set(arms)) < len(arms):
        raise click.BadParameter(
            f"{value!r} (expected arms from {', '.join(ARMS)} separated by commas, each once, real among them)"
        )
    return arms


@click.command("evaluate")
@click.option("--real", "real_spec", metavar="SPEC",
              help="Real data: its train split trains the classifiers, its test split (without --test) tests them "
                   "[default: the data the model was trained on, as --synthetic's manifest records it].")
@click.option("--test", "test_spec", metavar="SPEC",
              help="Test set instead of --real's test split: any data spec with the classes and image shape of "
                   "--real's train split, read as `genaug data` reads it.")
@click.option("--synthetic", required=True, metavar="OUT", help="The folder of a finished genaug synthesize.")
@click.option("--report", "report_dir", metavar="DIR", help="Report folder [default: OUT-report].")
@click.option("--arms", callback=_arm_list, default=",".join(EvaluationOptions.arms), show_default=True,
              metavar="ARM,...", help="Training sets to compare: real, classical, synthetic, classical+synthetic, "
                                      "top-up, pretrain, reweighted, distill (with classical, its teacher); variants, "
                                      "classical+variants (class-mix, classical+class-mix) with a --variants-of output.")
@click.option("--classifier", type=click.Choice(["small-cnn", "resnet18"]), default=EvaluationOptions.classifier,
              show_default=True, help="Every arm's network; resnet18 is ResNet-18 with a 3x3 stem, untrained.")
@click.option("--metric", type=click.Choice(["accuracy", "balanced_accuracy", "macro_f1", "auc"]),
              default=EvaluationOptions.metric, show_default=True, help="The metric of the verdict.")
@click.option("--seeds", callback=_seed_list, default=",".join(map(str, EvaluationOptions.seeds)), show_default=True,
              metavar="S,S,...", help="One classifier per seed for each arm; arms are paired by seed.")
@click.option("--steps", type=click.IntRange(min=1), default=EvaluationOptions.steps, show_default=True, metavar="N",
              help="Classifier optimiser steps, the same for every training set.")
@click.option("--mix", type=click.Choice(["proportional", "balance"]), default=EvaluationOptions.mix,
              show_default=True, help="proportional: keep the real class shares; balance: fill every class to the "
                                      "largest class's real count, then --mix-ratio beyond it.")
@click.option("--mix-ratio", type=click.FloatRange(min=0), default=EvaluationOptions.mix_ratio, show_default=True,
              metavar="R", help="Synthetic images added per real training image (balance: per image of the "
                                "largest class, beyond the fill).")
@click.option("--real-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), metavar="F",
              help="Repeat the real images until they are about this share of real + synthetic (e.g. 0.5) "
                   "[default: each once].")
@click.option("--swap-probability", type=click.FloatRange(0, 1), default=EvaluationOptions.swap_probability,
              show_default=True, metavar="P",
              help="Variants arms: the chance each drawn real image is replaced by one of its own variants.")
@click.option("--mix-gamma", type=click.FloatRange(0, 10, min_open=True), default=EvaluationOptions.mix_gamma,
              show_default=True, metavar="GAMMA",
              help="class-mix arms: a variant at strength s is labelled s^GAMMA its rendered class, the rest its own.")
@click.option("--tune", "tune", multiple=True, callback=_tune_grid, metavar="SETTING=V,V,...",
              help="Choose a setting on validation (swap_probability, mix_gamma, mix_ratio; repeatable).")
@click.option("--validation", metavar="SPEC", help="The set --tune scores on [default: --real's val split].")
@click.option("--policy", type=click.Choice(["trivialaugment", "randaugment"]), default=EvaluationOptions.policy,
              show_default=True, help="The classical arms' torchvision policy, after a random resized crop.")
@click.option("--flip/--no-flip", default=EvaluationOptions.flip, show_default=True,
              help="Classical arms also flip left-right: only where the domain allows it.")
@click.option("--jobs", type=click.IntRange(min=1), metavar="N",
              help="Classifier runs at once, one torch thread each [default: one per usable CPU; 1 on a GPU or "
                   "for short runs]. The figures do not depend on it.")
@click.option("--sample-size", type=click.IntRange(min=2), default=EvaluationOptions.sample_size, show_default=True,
              metavar="N", help="Images per set for Fréchet distance, precision/recall and memorisation.")
@click.option("--k", type=click.IntRange(min=1), default=EvaluationOptions.k, show_default=True, metavar="K",
              help="Neighbours for precision/recall.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=EvaluationOptions.device,
              show_default=True)
def evaluate_command(real_spec, test_spec, synthetic, report_dir, arms, classifier, metric, seeds, steps, mix,
                     mix_ratio, real_share, swap_probability, mix_gamma, tune, validation, policy, flip,
                     jobs, sample_size, k, device):
    """Measure synthetic images against real ones and against classical augmentation; write report.md and figures.

    A classifier trained on the real train split (cached) judges class consistency, gives the
    features for Fréchet distance, precision/recall and memorisation; then each arm trains the
    same classifier for the same steps and seeds on its own training set, tested on real test,
    and is paired seed by seed with real and classical: mean difference, 95% interval, verdict.

    \b
    Examples:
      genaug evaluate --synthetic runs/digits/synth      # --real: the data the model was trained on
      genaug evaluate --real 'idx:../shared/data/mnist-t10k' --synthetic synth/ --report reports/mnist
      genaug evaluate --real 'npz:../shared/data/breastmnist/breastmnist.npz' --synthetic synth/ \\
          --arms real,classical,synthetic,top-up,pretrain,reweighted --mix balance --metric balanced_accuracy
      genaug evaluate --real 'npz:../shared/data/retinamnist/retinamnist.npz' --synthetic synth/ \\
          --classifier resnet18 --seeds 0,1,2,3,4 --device cuda
      genaug evaluate --real builtin:digits --test 'folder:scans/?resolution=8&channels=1' --synthetic synth/
      genaug evaluate --real builtin:digits --synthetic var/ --arms real,classical,variants,classical+variants
      genaug evaluate --real builtin:digits --synthetic mixed/ --arms real,classical,class-mix --mix-gamma 0.5
      genaug evaluate --real 'npz:../shared/data/breastmnist/breastmnist.npz' --synthetic synth/ \\
          --arms real,classical,distill --tune mix_ratio=0.5,1,2 --metric balanced_accuracy
    """
    from gen_aug.evaluation.evaluate import describe_evaluation, evaluate, trained_on

    if real_spec is None:
        real_spec = trained_on(synthetic)
        click.echo(f"real         {real_spec} (the model's training data, as {synthetic}'s manifest records it)",
                   err=True)
    options = EvaluationOptions(
        real=real_spec, test=test_spec, synthetic=synthetic, report=report_dir, seeds=seeds, steps=steps, arms=arms,
        classifier=classifier, metric=metric, mix=mix, mix_ratio=mix_ratio, real_share=real_share,
        swap_probability=swap_probability, mix_gamma=mix_gamma, tune=tune, validation=validation, policy=policy,
        flip=flip, jobs=jobs, sample_size=sample_size, k=k, device=device,
    )
    result, folder = evaluate(options, log=lambda message: click.echo(message, err=True))
    click.echo(describe_evaluation(result, folder))
