"""`vitpipeline`: run the pipeline, check a config, or run the offline demo."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import traceback
from pathlib import Path

import yaml

from .config import ConfigError, PipelineConfig, dump_config, parse_config
from .errors import PipelineError, StorageError


def load_config_file(path: str, echo=None) -> PipelineConfig:
    """A pipeline config, or a ViTPipeline manifest (checked as the operator checks its spec)."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"--config: cannot read {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"--config: {path} is not valid YAML: {err}") from None
    if isinstance(data, dict) and data.get("kind") == "ViTPipeline":
        return config_from_manifest(data, echo)
    return parse_config(data)


def config_from_manifest(manifest: dict, echo=None) -> PipelineConfig:
    """spec.pipeline of a ViTPipeline, after the whole spec passed the operator's own checks.

    The run id is spec.pipeline.runId when set, else metadata.name made a valid id the way the
    operator shortens names; the operator also appends the resource's uid, which only exists
    once the resource is created, so a cluster run of the same manifest writes elsewhere."""
    from vitoperator.names import RUN_ID_MAX, fit
    from vitoperator.spec import SpecError, parse_spec, pipeline_config

    try:
        spec = parse_spec(manifest.get("spec"))
    except SpecError as err:
        # The operator's message names fields under spec; a manifest's reader needs the prefix.
        raise ConfigError("; ".join(p if p.startswith("spec") else f"spec.{p}" for p in str(err).split("; "))) from None
    if spec.pipeline.run_id:
        run_id, source = spec.pipeline.run_id, "spec.pipeline.runId"
    else:
        name = (manifest.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("metadata.name: required when spec.pipeline.runId is not set (it names the run)")
        run_id, source = fit(name, RUN_ID_MAX), "metadata.name; the operator appends the resource's uid"
    if echo is not None:
        echo(f"[vitpipeline] ViTPipeline manifest: run id {run_id} (from {source})")
    return pipeline_config(spec, run_id)


def results_table(summary: dict) -> str:
    """The run's outcome as aligned `name  value` lines, for either kind of run."""
    rows = (_prediction_rows if summary.get("kind") == "predict" else _training_rows)(summary)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _prediction_rows(summary: dict) -> list[tuple[str, str]]:
    c, m, t, parts = summary["counts"], summary["metrics"], summary["timingsSeconds"], summary["parts"]
    return [
        ("run", summary["runId"]),
        ("model", summary["model"]),
        ("images predicted / listed", f"{c['predicted']} / {c['listed']}"),
        ("quarantined", str(c["quarantined"])),
        ("parts written / reused", f"{parts['written']} / {parts['reused']} (of {parts['total']})"),
        ("labeled (evaluated)", str(c["labeled"])),
        ("prediction accuracy", _fmt(m.get("predictionAccuracy"))),
        ("macro F1", _fmt(m.get("macroF1"))),
        ("predictions", summary["predictionsUri"]),
        ("summary", summary["summaryUri"]),
        ("wall time", f"{t['total']:.1f}s"),
    ]


def _training_rows(summary: dict) -> list[tuple[str, str]]:
    c, m, t = summary["counts"], summary["metrics"], summary["timingsSeconds"]
    return [
        ("run", summary["runId"]),
        ("images usable / read", f"{c['usable']} / {c['read']}"),
        ("quarantined", str(c["quarantined"])),
        ("converted to RGB", ", ".join(f"{k}: {v}" for k, v in c["converted"].items()) or "0"),
        ("train / validation", f"{c['train']} / {c['validation']}"),
        ("classes", str(c["classes"])),
        ("eval accuracy", _fmt(m.get("accuracy"))),
        ("prediction accuracy", _fmt(m.get("predictionAccuracy"))),
        ("macro F1", _fmt(m.get("macroF1"))),
        ("predictions", summary["predictionsUri"]),
        ("checkpoint", summary["checkpointUri"]),
        ("summary", summary["summaryUri"]),
        ("wall time", f"{t['total']:.1f}s"),
    ]


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _run(config: PipelineConfig, verbose: bool = False) -> int:
    """Run `config`. Ray's, Hugging Face's and torch's own output goes to the driver log only
    (kept under the run's prefix) unless `verbose`; the screen gets the stage lines, training
    progress, the results table and, on failure, one line."""
    from .console import Console, progress_reader
    from .runner import new_attempt_id
    from .stages.commit import read_summary
    from .storage.driverlog import FdTee
    from .storage.layout import RunLayout
    from .storage.store import Store

    store, layout = Store(config.storage), RunLayout(config.output.uri, config.run_id)
    # A finished run is not run again, and its log is left as it was.
    keep_log = read_summary(store, layout) is None
    attempt = new_attempt_id()
    tee = FdTee(quiet=not verbose)
    try:
        with tee, Console(tee.say, tee.isatty(), progress_reader(store, layout.progress)) as console:
            try:
                return _run_and_report(config, attempt, console.say, verbose, layout.driver_log)
            finally:
                # Inside the capture: Ray prints what its workers logged last as it shuts down.
                _shutdown_ray()
    finally:
        if keep_log:
            save_driver_log(store, layout, attempt, tee.tail.value(), tee.say)


def _run_and_report(config: PipelineConfig, attempt: str, say, verbose: bool, driver_log: str) -> int:
    from .runner import run

    try:
        summary = run(config, attempt=attempt, echo=say)
    except PipelineError as err:
        if isinstance(err, StorageError):
            traceback.print_exception(err.__cause__)  # the remote tracebacks, into the driver log
        say(f"vitpipeline: {err}", err=True)
        return 1
    except Exception as err:
        traceback.print_exc()  # into the driver log (and on screen when verbose)
        first = (str(err).strip().splitlines() or [""])[0]
        say(
            f"vitpipeline: {type(err).__name__}: {first} (traceback {'above' if verbose else 'in ' + driver_log})",
            err=True,
        )
        return 1
    say(results_table(summary))
    return 0


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def save_driver_log(store, layout, attempt: str, data: bytes, say) -> None:
    """This attempt's log under its own prefix, and driver.log as the latest attempt's copy."""
    for uri in (layout.attempt(attempt).driver_log, layout.driver_log):
        try:
            store.write_bytes(uri, data)
        except OSError as err:
            say(f"[vitpipeline] could not save the driver log to {uri}: {err}", err=True)
            return


def load_config_b64(text: str) -> PipelineConfig:
    """The form a RayJob entrypoint carries: base64 of the JSON config (no shell quoting)."""
    try:
        data = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as err:
        raise ConfigError(f"--config-b64: not base64-encoded JSON: {err}") from None
    return parse_config(data)


def encode_config_b64(config: PipelineConfig) -> str:
    return base64.b64encode(json.dumps(dump_config(config), separators=(",", ":")).encode()).decode()


def cmd_run(args) -> int:
    if args.config_b64:
        return _run(load_config_b64(args.config_b64), args.verbose)
    return _run(load_config_file(args.config, echo=print), args.verbose)


def cmd_check(args) -> int:
    config = load_config_file(args.config, echo=print)
    print(f"{args.config}: valid (run {config.run_id})")
    return 0


def cmd_show(args) -> int:
    from .show import show

    return show(args.run, args.endpoint_url, args.json)


def cmd_schema(_args) -> int:
    print(json.dumps(PipelineConfig.model_json_schema(by_alias=True), indent=2))
    return 0


def cmd_demo(args) -> int:
    from .demo import demo_config, save_tiny_vit, write_digits

    work = Path(args.workdir).resolve()
    data, model = work / "digits", work / "tiny-vit"
    if not data.exists():
        print(f"[vitpipeline] writing demo images to {data}")
        write_digits(data)
    if not model.exists():
        print(f"[vitpipeline] saving a tiny ViT to {model}")
        save_tiny_vit(model)
    cfg = demo_config(str(data), str(model), args.output or str(work / "output"), run_id=args.run_id)
    return _run(parse_config(cfg), args.verbose)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vitpipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the pipeline from a config file (or a ViTPipeline manifest)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help="YAML or JSON config file")
    group.add_argument("--config-b64", help="base64 of the JSON config (used by RayJob entrypoints)")
    p.add_argument("--verbose", action="store_true", help="show Ray's and Hugging Face's own output too")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("check", help="validate a config file and exit")
    p.add_argument("--config", required=True)
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser(
        "show",
        help="the state of a run: progress while it runs, results when done",
        description="Exit status: 0 succeeded, 3 running, 1 failed, 1 no run there.",
    )
    p.add_argument("run", help="<output-uri>/<runId>, a local path or s3://")
    p.add_argument("--endpoint-url", default=None, help="S3 endpoint (default: $AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--json", action="store_true", help="the state as JSON, for scripts")
    p.set_defaults(fn=cmd_show)
    p = sub.add_parser("schema", help="print the config's JSON schema")
    p.set_defaults(fn=cmd_schema)
    p = sub.add_parser("demo", help="offline demo: digits images and a tiny ViT, on local Ray")
    p.add_argument("--workdir", default="demo-data")
    p.add_argument("--output", default=None)
    p.add_argument("--run-id", default="demo")
    p.add_argument("--verbose", action="store_true", help="show Ray's and Hugging Face's own output too")
    p.set_defaults(fn=cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as err:
        print(f"vitpipeline: invalid config: {err}", file=sys.stderr)
        return 2
    except PipelineError as err:
        print(f"vitpipeline: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
