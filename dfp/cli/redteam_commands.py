"""`dfp redteam ...`: create, enhance and score deepfakes through the gateway, and report how the
detectors hold up."""

from __future__ import annotations

import pathlib

import click

from dfp.cli.gateway_commands import gateway_options
from dfp.cli.output import emit, note


@click.group()
def redteam() -> None:
    """Measure detectors against the platform's own deepfakes, as made and enhanced."""


def _load(config_path: pathlib.Path):
    from dfp.redteam import config

    try:
        return config.load(config_path)
    except config.ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None


def _summary(result: dict, folder: pathlib.Path) -> str:
    lines = [f"report: {folder / 'report.md'}"]
    for group in result["groups"]:
        auc = "n/a" if group["auc"] is None else f"{group['auc']:.3f}"
        lines.append(f"  {group['detector']:<22} {group['method']:<10} {group['enhancement']:<14} AUC {auc}")
    if result["failed_steps"]:
        lines.append(f"  {len(result['failed_steps'])} steps failed; see the report")
    return "\n".join(lines)


@redteam.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help="The run's YAML file (see dfp/redteam/config.py for every key).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Run folder: state.json, inputs, media, report. Rerun with the same folder to resume.")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Jobs in flight at once (each counts against the team's concurrent-job quota).")
@gateway_options
def run_command(client, config_path, out, parallel, as_json, quiet):
    """Create every fake, enhance it, score every variant with every detector, then write the report.

    Fakes are made with each creation method the configuration names (animation of each still by each
    driving clip; face swap of each target clip), enhanced with each setting, and scored frame by
    frame with each detector alongside the real clips. The run is resumable: rerun the same command
    and finished steps are kept, unfinished jobs are followed, not resubmitted.

    \b
    Example:
      dfp redteam run --config redteam/shared-clips.yaml --out runs/redteam-1
    """
    from dfp.redteam import report
    from dfp.redteam.runner import Runner

    run = _load(config_path)
    runner = Runner(client, run, out, parallel=parallel, log=(lambda m: None) if quiet else note)
    state = runner.execute()
    result = report.write_run(run, out, state)
    emit(result, as_json, _summary(result, out))


@redteam.command("report")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--out", required=True, type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path),
              help="The run folder of a finished `dfp redteam run`.")
@click.option("--json", "as_json", is_flag=True)
def report_command(config_path, out, as_json):
    """Write the report of a finished run again (offline), for example with another threshold in the
    configuration."""
    from dfp.redteam import report

    run = _load(config_path)
    result = report.write_run(run, out, _finished_state(out, "--out"))
    emit(result, as_json, _summary(result, out))


@redteam.command("compare")
@click.option("--before", required=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help="report.json of the earlier run.")
@click.option("--after", required=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help="report.json of the later run.")
@click.option("--labels", nargs=2, default=("before", "after"), show_default=True,
              help="Column labels of the two runs, for example two dates.")
def compare_command(before, after, labels):
    """Print two runs' figures side by side (markdown): AUC with intervals and detection rate per
    detector, method and enhancement, and the false positive rates.

    \b
    Examples:
      dfp redteam compare --before old/report.json --after new/report.json --labels 2026-11-27 2026-12-07
    """
    import json

    from dfp.redteam import report

    click.echo(report.comparison_markdown(json.loads(before.read_text()), json.loads(after.read_text()), *labels),
               nl=False)


def _finished_state(folder: pathlib.Path, option: str) -> dict:
    import json

    state_path = folder / "state.json"
    if not state_path.exists():
        raise click.BadParameter(f"{folder} has no state.json; run `dfp redteam run` first", param_hint=option)
    state = json.loads(state_path.read_text())
    if "plan" not in state:
        raise click.BadParameter(f"the run in {folder} has not finished; rerun `dfp redteam run` to resume it",
                                 param_hint=option)
    return state


@redteam.command("hard-examples")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path),
              help="The folder of a finished `dfp redteam run`.")
@click.option("--detector", required=True, help="Whose misses to collect, as the run names it (detector, meso4@v1...).")
@click.option("--holdout", "holdout", multiple=True, required=True, type=click.Choice(["animation", "face_swap"]),
              help="Creation method kept out of training, to measure on; repeatable.")
@click.option("--base-data", required=True, type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path),
              help="The detector's own training data (labels.csv), for example ../shared/data/dfdc-faces.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Dataset folder to write (images/, labels.csv).")
@click.option("--threshold", type=float, default=0.5, show_default=True, help="A fake scored below this was missed.")
@click.option("--base-train", type=click.IntRange(0), default=2000, show_default=True,
              help="Class-balanced train faces taken from --base-data (0: all).")
@click.option("--oversample", type=click.IntRange(1, 100), default=4, show_default=True,
              help="How many times each missed fake appears in the train split.")
@click.option("--json", "as_json", is_flag=True)
def hard_examples_command(run_dir, detector, holdout, base_data, out, threshold, base_train, oversample, as_json):
    """Turn the fakes a detector missed into training data, keeping a creation method aside to test on.

    Splits: train = base train subset + missed fakes of the other methods + real clips the held-out
    fakes were not made from; val = the base validation split; test = the held-out method's fakes
    and their real clips. Then fine-tune, compare before and after on test, and register:

    \b
      dfp redteam hard-examples --run runs/rt --detector detector --holdout face_swap \\
          --base-data ../shared/data/dfdc-faces --out data/hard
      dfp detector train --data data/hard --arch resnet --finetune-from models/detector/default/weights.h5 \\
          --epochs 3 --out runs/hard
      dfp detector evaluate --data data/hard --split test --weights models/detector/default/weights.h5 \\
          --weights runs/hard/best.h5
      dfp detector register --run runs/hard --name detector --publish
    """
    from dfp.redteam import hard_examples

    settings = hard_examples.HardExampleSettings(detector=detector, holdout_methods=tuple(holdout),
                                                 threshold=threshold, base_train=base_train, oversample=oversample)
    try:
        summary = hard_examples.build(run_dir, _finished_state(run_dir, "--run"), base_data, out, settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    counts = summary["counts"]
    emit(summary, as_json, f"{summary['missed_fakes']} missed fakes from the training methods; dataset {out}: "
                           + ", ".join(f"{split} {c['real']} real / {c['fake']} fake" for split, c in counts.items()))


def register(cli: click.Group) -> None:
    cli.add_command(redteam)
