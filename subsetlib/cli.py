"""``python -m subsetlib q | run | page | batch | bench``: a thin layer over the modules; user mistakes end as one
line."""

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from pathlib import Path

from subsetlib.errors import UserError, check_seed


def _whole_number(minimum: int):
    """An argparse type: a whole number of at least ``minimum``, refused in one line otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {'> 0' if minimum == 1 else f'>= {minimum}'} (got {value})")
        return value

    return parse


_positive_int, _non_negative_int = _whole_number(1), _whole_number(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < math.inf:  # also NaN
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0 (got {text})")
    return value


def _seed(text: str) -> int:
    try:
        return check_seed(int(text))
    except (ValueError, UserError) as err:
        raise argparse.ArgumentTypeError(str(err) if isinstance(err, UserError) else
                                         f"{text!r} is not a whole number") from None


# flags of ``run`` that only some protocols use: given to another one, they would be ignored without a word
PROTOCOL_FLAGS = {"fraction": ("subset", "growing"), "target_q": ("subset",), "subset_epochs": ("subset", "growing"),
                  "epochs": ("conventional", "subset")}
RUN_DEFAULTS = {"epochs": 5, "subset_epochs": 10}


def cmd_q(args: argparse.Namespace) -> int:
    import pandas as pd

    from subsetlib.planner import q_table

    table = q_table(args.model, args.dataset, args.fractions, args.target_q)
    first = table.iloc[0]
    print(f"model {args.model}: P = {first.P:,} trainable parameters; dataset {args.dataset}: "
          f"M = {first.M} classes, K = {first.K_full:,} training examples")
    for _, row in table.iterrows():
        what = f"target Q {row.target_q:g}" if pd.notna(row.target_q) else f"fraction {row.fraction:.4g}"
        note = "" if row.feasible else "  (more than the training set holds)"
        print(f"  {what:<18} K = {row.K:>9,}  fraction {row.fraction:8.4f}  Q = {row.Q:10.3f}{note}")
    return 0


def _check_run_inputs(args: argparse.Namespace):
    """Every input of ``run`` checked before anything is loaded or written, so a typo leaves no trace on disk."""
    from subsetlib import data, protocols
    from subsetlib.errors import check_fraction
    from subsetlib.planner import count_parameters, fraction_for_q
    from subsetlib.registry import dataset_spec

    for name, protocols_using in PROTOCOL_FLAGS.items():
        if getattr(args, name) is not None and args.protocol not in protocols_using:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} does not apply to protocol {args.protocol} (only to {', '.join(protocols_using)}):"
                            f" leave it out")
    for name, default in RUN_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    spec = dataset_spec(args.dataset)
    device = data.resolve_device(args.device)
    p = count_parameters(args.model, spec)  # also refuses an unknown model or one the dataset's images do not fit
    cfg = protocols.config_from(vars(args))  # the flags named like RunConfig fields, checked by RunConfig
    smallest, what = spec.train_size, "training set"
    if args.protocol != "conventional":
        if args.protocol == "growing" and args.fraction is None:
            raise UserError("protocol growing needs --fraction (the fraction of its first stage)")
        if args.fraction is None and args.target_q is None:
            raise UserError(f"protocol {args.protocol} needs --fraction or --target-q")
        if args.fraction is not None and args.target_q is not None:
            raise UserError(f"give --fraction or --target-q, not both (protocol {args.protocol})")
        what = "subset"
        if args.fraction is not None:
            smallest = max(1, round(check_fraction(args.fraction) * spec.train_size))
        else:
            smallest = fraction_for_q(p, spec.class_sizes(), args.target_q, args.dataset)[1]
    if args.batch_size > smallest:
        raise UserError(f"batch size {args.batch_size} exceeds the {smallest} examples of the {what}: "
                        f"choose --batch-size {smallest} or less")
    return cfg, device


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from subsetlib import data, protocols, results
    from subsetlib.train import set_threads

    set_threads()
    cfg, device = _check_run_inputs(args)
    dataset = data.load(args.dataset, args.data, device)
    results.check_writable(args.results, fix="pass another --results")
    store = str(args.results)  # runs already stored there are loaded, not trained again: a rerun resumes
    bar = tqdm(args.seeds, desc=f"run {args.protocol} {args.dataset}", unit="seed", file=sys.stderr,
               disable=None)  # a terminal only; TQDM_DISABLE=1 (CI) turns it off
    with protocols.progress_lines() if _log_lines() else contextlib.nullcontext():
        for seed in bar:
            bar.set_postfix_str(f"seed {seed}")
            if args.protocol == "conventional":
                run = protocols.conventional(dataset, cfg, seed, args.epochs, results_dir=store)
            elif args.protocol == "subset":
                run = protocols.subset_pretraining(dataset, cfg, seed, args.subset_epochs, args.epochs,
                                                   fraction=args.fraction, target_q=args.target_q, results_dir=store)
            else:
                run = protocols.growing(dataset, cfg, seed, args.fraction, args.subset_epochs, results_dir=store)
            shown = {k: _json_number(run.summary[k]) for k in ("run_id", "seed", "subset_Q", "final_test_acc",
                                                               "min_train_loss", "total_examples",
                                                               "total_train_seconds")}
            stored = Path(store) / "runs" / f"{shown['run_id']}.parquet"
            done = "loaded (stored before, nothing trained)" if "ended" in run.summary else "trained"  # save's stamp
            bar.write(f"subsetlib: seed {seed}: {done}: {stored}", file=sys.stderr)
            bar.write(json.dumps(shown, allow_nan=False), file=sys.stdout)  # above the bars, not through them
    bar.close()
    return 0


def _log_lines() -> bool:
    """Progress as plain lines: stderr goes to a file or a pipe, where a bar does not show (TQDM_DISABLE=1 or CI:
    no progress at all)."""
    return not sys.stderr.isatty() and not (os.environ.get("TQDM_DISABLE") or os.environ.get("CI"))


def _json_number(value: object) -> object:
    """A value for JSON: numpy numbers as Python ones, and a number that is not finite as null (JSON has no NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def cmd_page(args: argparse.Namespace) -> int:
    from subsetlib.pages import PageFailed, prepare, run_page

    notebook, output, values = prepare(args.notebook, args.parameters or [], args.output)
    print(f"subsetlib: running {args.notebook} (its runs stored already are loaded, not trained again)",
          file=sys.stderr)
    try:
        run_page(notebook, output, values)
    except PageFailed as err:
        print(f"subsetlib: page failed: {err}", file=sys.stderr)
        return 1
    print(f"subsetlib: wrote {output}", file=sys.stderr)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from subsetlib.batch import cell_status, renders_again, run_grid
    from subsetlib.grids import load_grid

    if args.dry_run:
        grid = load_grid(args.grid)
        for cell in grid.cells:
            mark = {"done": "done", "failed": "failed"}.get(cell_status(grid, cell), "to do")
            mark += ", renders again" * (renders_again(cell, args.again) and mark == "done")
            print(f"wave {cell.wave + 1}: [{mark}] {cell.output}  {json.dumps(cell.parameters)}")
        return 0
    report = run_grid(args.grid, retry_failed=args.retry_failed, scheduler=args.scheduler, workers=args.workers,
                      worker_wait=args.worker_wait, again=args.again)
    skipped_failed = f", {report.skipped_failed} skipped as failed before" if report.skipped_failed else ""
    print(f"{report.ran} cells ran ({report.failed_now} failed), {report.skipped_done} skipped as already done"
          f"{skipped_failed}")
    for s in report.failed:
        print(f"  failed: {s['output']}: {s['error']}  (rerun with --retry-failed)")
    return 1 if report.failed else 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Every input checked, then the pilot, then the predicted excess at each K and the smallest K for a target."""
    import numpy as np

    from subsetlib import predict
    from subsetlib.minimise import Objective
    from subsetlib.registry import dataset_spec
    from subsetlib.train import set_threads

    set_threads()
    objective = Objective(args.loss, args.l2)
    spec = dataset_spec(args.dataset)
    if args.train_size > spec.train_size or args.pilot > args.train_size:
        raise UserError(f"need --pilot <= --train-size <= {spec.train_size} (the training examples of "
                        f"{args.dataset}); got {args.pilot} and {args.train_size}")
    pool = args.pool or (8 if spec.shape[-1] == 32 else 4)
    if spec.shape[-1] % pool:
        raise UserError(f"--pool {pool} does not divide the {spec.shape[-1]}-pixel images: use a divisor")
    c, h, w = spec.shape
    flat = args.model == "mlp"
    shape = (c * (h // pool) * (w // pool),) if flat else (c, h // pool, w // pool)
    net = predict.network_for(args.model, args.width, shape, spec.num_classes, args.seed)
    if net.size > predict.CPU_PARAMETERS:
        raise UserError(f"P = {net.size:,} is above {predict.CPU_PARAMETERS:,}: a pilot takes hours on a CPU "
                        "there; run it on a GPU (the certified study's GPU profile, design mnist-gpu)")
    ks = args.k or []
    if any(k > args.train_size for k in ks):
        raise UserError(f"every --k must be at most --train-size {args.train_size} (got {max(ks)})")
    trusted = predict.trusted_from(args.results, args.loss, objective.l2)
    if trusted is not None:
        if not trusted == trusted:  # NaN: the validation found no Q at which it holds
            raise UserError(f"the certified study's validation ({args.results}) found no Q at which the prediction "
                            f"holds for {args.loss} with λ = {objective.l2:g}: no prediction is given")
        low = [k for k in ks if k * spec.num_classes / net.size < trusted]
        if low:
            raise UserError(f"K = {low[0]} is Q = {low[0] * spec.num_classes / net.size:.2g} with P = "
                            f"{net.size:,}; the certified study found the prediction holds for {args.loss} only "
                            f"from Q = {trusted:g}: "
                            f"choose K >= {int(np.ceil(trusted * net.size / spec.num_classes))}")
    print(f"subsetlib: pilot: a certified minimum on {args.pilot} of {args.train_size} examples of {args.dataset} "
          f"(P = {net.size:,}), then tr(H⁻¹Σ)", file=sys.stderr)
    x, y, name = predict.inputs(args.dataset, args.train_size, pool, flat)
    pilot = predict.pilot(net, x, y, objective, args.pilot, args.seed)
    print(f"pilot on {args.pilot} examples of {name}: {'certified' if pilot.certified else 'NOT certified'}; "
          f"{pilot.cost.evaluations} evaluations + {pilot.cost.hvps} Hessian-vector products, "
          f"{pilot.cost.seconds:.1f} s")
    print(f"tr(H⁻¹Σ) = {pilot.effective_dimension:.4g} ± {pilot.standard_error:.2g} ({pilot.method}); P = {pilot.p:,}, "
          f"ratio {pilot.effective_dimension / pilot.p:.3g}")
    if trusted is None:
        print(f"not validated: the certified study in {args.results} has no runs of this objective")
    for k in ks:
        e = predict.excess(pilot, k, args.train_size)
        print(f"K = {k:,} (Q = {k * spec.num_classes / net.size:.3g}): predicted excess {e.mean:.4g} "
              f"[{e.low:.3g}, {e.high:.3g}] (90 % prediction interval)")
    if args.target is not None:
        k = predict.smallest_k(pilot, args.target, args.train_size)
        print(f"smallest K for a mean excess of at most {args.target:g}: {k:,}")
    return 0


def _bench_minimiser(name: str) -> int:
    """The full-batch minimiser's calls against the fp64 peak, and its two methods, on a certified-study design."""
    from subsetlib import bench_minimise
    from subsetlib.certified.design import design

    design(name)  # checked before the announcement
    print(f"subsetlib: timing the float64 calls of design {name}, then L-BFGS-B and trust-krylov on its narrowest "
          "width (about a minute on two CPU cores)", file=sys.stderr)
    for row in bench_minimise.calls(name):
        print(f"P = {row['p']:>5,}: evaluation {row['evaluation_ms']:.2f} ms = {row['gflops']:.2f} GFLOP/s, "
              f"{row['share_of_peak']:.1%} of the fp64 peak ({row['peak_gflops']:.1f} GFLOP/s); Hessian-vector "
              f"product {row['hvp_over_evaluation']:.2f} evaluations", flush=True)
    for row in bench_minimise.methods(name):
        print(f"{row['method']:>12} (P = {row['p']}): {row['evaluations']} evaluations + {row['hvps']} Hessian-vector "
              f"products, {row['seconds']:.1f} s, objective {row['objective']:.6f}, certified {row['certified']}",
              flush=True)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from subsetlib import bench_loader, bench_peak
    from subsetlib.data import resolve_device
    from subsetlib.planner import count_parameters
    from subsetlib.registry import dataset_spec
    from subsetlib.train import check_precision, set_threads

    set_threads()
    if args.minimiser:
        return _bench_minimiser(args.dataset)
    check_precision(args.precision)
    spec = dataset_spec(args.dataset)  # every input checked before the announcement, and before anything is timed
    resolve_device(args.device)
    count_parameters(args.model, spec)  # also refuses an unknown model or one the dataset's images do not fit
    if args.batch_size > spec.train_size:
        raise UserError(f"batch size {args.batch_size} exceeds the {spec.train_size} training examples of "
                        f"{args.dataset}: choose --batch-size {spec.train_size} or less")
    what = "the peak probe, then every precision and memory-format variant" if args.variants else (
        "the GPU-resident loop, then a DataLoader loop")
    print(f"subsetlib: timing {what}, {args.steps} steps each; on two CPU cores 300 steps of cnn-simple on MNIST "
          "took about 4 minutes", file=sys.stderr)
    if args.variants:
        peak = bench_peak.peak_probe(args.device)
        print(f"peak (matmul {peak['size']}): fp32 {peak['fp32'] / 1e9:,.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:,.1f}")
        print(bench_peak.format_variants(bench_peak.loop_variants(args.dataset, args.model, args.batch_size, args.steps,
                                                                  device=args.device, root=args.data, peak=peak)))
        return 0
    result = bench_loader.compare_loops(dataset=args.dataset, model=args.model, batch_size=args.batch_size,
                                        steps=args.steps, device=args.device, augment=args.augment,
                                        workers=args.workers, root=args.data,
                                        precision=args.precision, channels_last=args.channels_last,
                                        progress=lambda text: print(f"subsetlib: {text}", file=sys.stderr, flush=True))
    print(bench_loader.format_report(result))
    return 0


def _add_shared_options(parser: argparse.ArgumentParser, datasets: str, models: str) -> None:
    """The options ``run`` and ``bench`` share: what to train and how, and where."""
    from subsetlib.train import PRECISIONS

    parser.add_argument("--dataset", default="mnist", help=f"The dataset: {datasets}.")
    parser.add_argument("--model", default="cnn-simple", help=f"The model: {models}.")
    parser.add_argument("--batch-size", type=_positive_int, default=128, help="Examples per mini-batch.")
    parser.add_argument("--augment", action="store_true", help="Random crops and flips where the dataset allows them.")
    parser.add_argument("--precision", default="fp32", help=f"Arithmetic: {', '.join(PRECISIONS)} (bf16 is autocast, "
                        "on the CPU too).")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="NHWC memory format for images: the same arithmetic, faster convolutions.")
    parser.add_argument("--data", help="Data root (default: $SUBSETLIB_DATA, then ./data, then ../shared/data)")
    parser.add_argument("--device", default="auto", help="Where to compute: auto, cpu, cuda or cuda:N.")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake ends like every other user error: one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"subsetlib: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default; a flag without a fixed default says in its own words what it does
    when left out."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from subsetlib.models import model_names
    from subsetlib.registry import dataset_names
    from subsetlib.train import OPTIMIZERS

    parser = _Parser(prog="python -m subsetlib", description=__doc__.replace("``", "'"), formatter_class=_Help,
                     allow_abbrev=False)  # --epoch is a typo, not --epochs
    sub = parser.add_subparsers(dest="command", required=True)
    models, datasets = ", ".join(model_names()), ", ".join(dataset_names())

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text + ".", formatter_class=_Help, allow_abbrev=False)

    q = command("q", "P, and K and Q = K*M/P for subsets of a dataset")
    q.add_argument("--model", default="cnn-simple", help=f"The model whose parameters P are counted: {models}, or a "
                   "torchvision model name.")
    q.add_argument("--dataset", default="mnist", help=f"The dataset that gives K and M: {datasets}.")
    q.add_argument("--fractions", type=float, nargs="+", default=[1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32],
                   help="Subset fractions in (0, 1] to tabulate.")
    q.add_argument("--target-q", type=float, nargs="*", default=[1.5, 2, 3],
                   help="Target values of Q; each gets the smallest subset that reaches it.")
    q.set_defaults(func=cmd_q)

    run = command("run", "train one protocol on real data and store the result")
    run.add_argument("--protocol", choices=["conventional", "subset", "growing"], default="conventional",
                     help="Full-set training, subset pretraining then fine-tuning, or growing subsets.")
    _add_shared_options(run, datasets, models)
    run.add_argument("--fraction", type=float, help="Subset fraction in (0, 1]; protocols subset and growing only "
                     "(no default: subset needs it or --target-q, growing needs it).")
    run.add_argument("--target-q", type=float, help="Choose the subset by its Q instead; protocol subset only "
                     "(no default).")
    run.add_argument("--epochs", type=_positive_int, help="Full-set epochs; protocols conventional and subset "
                     f"(fine-tuning) only (default: {RUN_DEFAULTS['epochs']})")
    run.add_argument("--subset-epochs", type=_positive_int, help="Epochs per subset phase or growing stage; "
                     f"protocols subset and growing only (default: {RUN_DEFAULTS['subset_epochs']})")
    run.add_argument("--seeds", type=_seed, nargs="+", default=[0], help="One run per seed, each from 0 to 2**63 - 1.")
    run.add_argument("--optimizer", default="adam", help=f"The optimizer: {', '.join(OPTIMIZERS)}.")
    run.add_argument("--lr", type=float, default=1e-3, help="Learning rate, > 0.")
    run.add_argument("--eval-every", type=float, default=1.0, help="Epoch-equivalents between evaluations.")
    run.add_argument("--results", default="results/adhoc", help="Folder of the results store; runs stored there "
                     "already are loaded, not trained again.")
    run.set_defaults(func=cmd_run)

    page = command("page", "run one notebook with papermill, its parameters checked before a kernel starts")
    page.add_argument("notebook", help="The notebook, e.g. notebooks/study.ipynb (or its name, study).")
    page.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                      help="A parameter of its parameters cell; lists as YAML, e.g. -p seeds '[0, 1, 2]' (default: "
                      "the notebook's own values)")
    page.add_argument("-o", "--output", help="Where the executed notebook goes (default: "
                      "results/adhoc/NAME.ipynb of the repository)")
    page.set_defaults(func=cmd_page)

    batch = command("batch", "run a grid of notebooks with papermill on Dask (resumable)")
    batch.add_argument("grid", help="The grid YAML file, e.g. grids/study.yaml.")
    batch.add_argument("--retry-failed", action="store_true", help="Rerun cells that failed before.")
    batch.add_argument("--again", metavar="GLOB", help="Render done cells whose output file name matches GLOB "
                       "once more (after a change to their notebook or the library), e.g. '*minima*' (default: "
                       "none; done cells are skipped)")
    batch.add_argument("--scheduler", help="Address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: "
                       "start a local cluster)")
    batch.add_argument("--worker-wait", type=_seconds, default=60.0, help="Seconds to wait for a worker to join the "
                       "scheduler before giving up; with --scheduler only.")
    batch.add_argument("--workers", type=_positive_int, help="Local workers (default: one per GPU, else one per "
                       "core)")
    batch.add_argument("--dry-run", action="store_true", help="List the cells, each marked done (and whether it "
                       "renders again), failed or to do, and exit.")
    batch.set_defaults(func=cmd_batch)

    predict = command("predict", "how far a subset's minimum will lie from the full set's, from a cheap pilot")
    predict.add_argument("--dataset", default="mnist", help=f"The dataset: {datasets}.")
    predict.add_argument("--model", default="mlp", help="The model: mlp (the certified study's tanh MLP on pooled "
                         "inputs), a registry model name, or an importable factory package.module:function called with "
                         "(input shape, classes).")
    predict.add_argument("--width", type=_positive_int, default=6, help="Hidden units of the mlp.")
    predict.add_argument("--loss", default="squared", help="The loss: squared or cross-entropy.")
    predict.add_argument("--l2", type=float, default=1e-4, help="The objective's λ in λ‖θ‖²/2.")
    predict.add_argument("--train-size", type=_positive_int, default=2500, help="N: the stratified part of the "
                         "training set that is the full set.")
    predict.add_argument("--pool", type=_positive_int, help="Average pooling of the images (default: 4 for 28-pixel "
                         "images, 8 for 32-pixel ones).")
    predict.add_argument("--pilot", type=_positive_int, default=500, help="Examples of the pilot's minimum.")
    predict.add_argument("--k", type=_positive_int, nargs="+", help="Subset sizes to predict the excess for "
                         "(default: none).")
    predict.add_argument("--target", type=float, help="A target mean excess: prints the smallest K that meets it "
                         "(default: none).")
    predict.add_argument("--seed", type=_non_negative_int, default=0, help="Seed of the pilot's sample and weights.")
    predict.add_argument("--results", default="results/certified", help="The certified study's stored runs, whose "
                         "validation decides where a prediction is refused.")
    predict.set_defaults(func=cmd_predict)

    bench = command("bench", "samples/s of the GPU-resident loop against a DataLoader loop")
    _add_shared_options(bench, datasets, models)
    bench.add_argument("--steps", type=_positive_int, default=300, help="Timed steps per loop.")
    bench.add_argument("--workers", type=_non_negative_int, default=0, help="DataLoader worker processes.")
    bench.add_argument("--variants", action="store_true", help="Instead of the loop comparison: the peak probe, then "
                       "bare step, loop and evaluation rates of every precision and memory-format variant.")
    bench.add_argument("--minimiser", action="store_true", help="Instead: the full-batch minimiser's float64 calls "
                       "against the measured fp64 peak, and L-BFGS-B against trust-krylov, on the certified study's "
                       "design named by --dataset (mnist, fashion-mnist, cifar10-jpeg).")
    bench.set_defaults(func=cmd_bench)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"subsetlib: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning  # a warning a user should read is one line, like an error
            # torch's own deprecation of torch.jit.script, raised inside torch's imports: not the user's to act on
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
            return args.func(args)
    except UserError as err:
        print(f"subsetlib: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("subsetlib: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
