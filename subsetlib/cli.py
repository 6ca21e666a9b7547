"""``python -m subsetlib q | run | batch | bench``: a thin layer over the modules; user mistakes end as one line."""

import argparse
import json
import sys

from subsetlib.errors import UserError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {value})")
    return value


def cmd_q(args: argparse.Namespace) -> int:
    from subsetlib.q import q_table

    table = q_table(args.model, args.dataset, args.fractions, args.target_q)
    first = table.iloc[0]
    print(f"model {args.model}: P = {first.P:,} trainable parameters; dataset {args.dataset}: "
          f"M = {first.M} classes, K = {first.K_full:,} training examples")
    for _, row in table.iterrows():
        what = f"target Q {row.target_Q:g}" if row.target_Q == row.target_Q else f"fraction {row.fraction:.4g}"
        note = "" if row.feasible else "  (more than the training set holds)"
        print(f"  {what:<18} K = {row.K:>9,}  fraction {row.fraction:8.4f}  Q = {row.Q:10.3f}{note}")
    return 0


def _check_run_inputs(args: argparse.Namespace):
    """Every input of ``run`` checked before anything is loaded or written, so a typo leaves no trace on disk."""
    from subsetlib import data, protocols
    from subsetlib.models import build_model
    from subsetlib.q import check_fraction, count_parameters, min_subset_size
    from subsetlib.train import make_optimizer

    spec = data.dataset_spec(args.dataset)
    device = data.resolve_device(args.device)
    model = build_model(args.model, spec.shape, spec.num_classes)
    make_optimizer(model, args.optimizer, args.lr)
    cfg = protocols.RunConfig(dataset=args.dataset, model=args.model, optimizer=args.optimizer, lr=args.lr,
                              batch_size=args.batch_size, augment=args.augment, eval_every=args.eval_every,
                              precision=args.precision, channels_last=args.channels_last)
    smallest, what = spec.train_size, "training set"
    if args.protocol != "conventional":
        if args.fraction is None and args.target_q is None:
            raise UserError(f"protocol {args.protocol} needs --fraction or --target-q")
        if args.fraction is not None and args.target_q is not None:
            raise UserError(f"give --fraction or --target-q, not both (protocol {args.protocol})")
        if args.protocol == "growing" and args.fraction is None:
            raise UserError("protocol growing needs --fraction (its first stage)")
        if args.fraction is not None:
            smallest, what = max(1, round(check_fraction(args.fraction) * spec.train_size)), "subset"
        else:
            smallest, what = min_subset_size(count_parameters(model), spec.num_classes, args.target_q), "subset"
            if smallest > spec.train_size:
                raise UserError(f"target Q {args.target_q} needs K={smallest} examples but {args.dataset} has "
                                f"{spec.train_size}: choose a smaller target")
    if args.batch_size > smallest:
        raise UserError(f"batch size {args.batch_size} exceeds the {smallest} examples of the {what}: "
                        f"choose --batch-size {smallest} or less")
    return cfg, device


def cmd_run(args: argparse.Namespace) -> int:
    from subsetlib import data, protocols, results
    from subsetlib.train import set_threads

    set_threads()
    cfg, device = _check_run_inputs(args)
    dataset = data.load(args.dataset, args.data, device)
    results.check_writable(args.results)
    store = str(args.results)  # runs already stored there are loaded, not trained again: a rerun resumes
    for seed in args.seeds:
        if args.protocol == "conventional":
            run = protocols.conventional(dataset, cfg, seed, args.epochs, results_dir=store)
        elif args.protocol == "subset":
            run = protocols.subset_pretraining(dataset, cfg, seed, args.subset_epochs, args.epochs,
                                               fraction=args.fraction, target_q=args.target_q, results_dir=store)
        else:
            run = protocols.growing(dataset, cfg, seed, args.fraction, args.subset_epochs, results_dir=store)
        s = run.summary
        print(json.dumps({k: s[k] for k in ("run_id", "seed", "subset_Q", "final_test_acc", "min_train_loss",
                                            "total_examples", "total_train_seconds")}, default=float))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from subsetlib.batch import load_grid, run_grid

    if args.dry_run:
        grid = load_grid(args.grid)
        for cell in grid.cells:
            print(f"wave {cell.wave + 1}: {cell.output}  {json.dumps(cell.parameters)}")
        return 0
    states = run_grid(args.grid, retry_failed=args.retry_failed, scheduler=args.scheduler, workers=args.workers)
    failed = [s for s in states if s.get("status") == "failed"]
    print(f"{len(states) - len(failed)} cells done, {len(failed)} failed")
    for s in failed:
        print(f"  failed: {s['output']}: {s['error']}  (rerun with --retry-failed)")
    return 1 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from subsetlib import bench
    from subsetlib.train import check_precision, set_threads

    set_threads()
    check_precision(args.precision)
    if args.variants:
        peak = bench.peak_probe(args.device)
        print(f"peak (matmul {peak['size']}): fp32 {peak['fp32'] / 1e9:,.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:,.1f}")
        print(bench.format_variants(bench.loop_variants(args.dataset, args.model, args.batch_size, args.steps,
                                                        device=args.device, root=args.data, peak=peak)))
        return 0
    result = bench.compare_loops(dataset=args.dataset, model=args.model, batch_size=args.batch_size, steps=args.steps,
                                 device=args.device, augment=args.augment, workers=args.workers, root=args.data,
                                 precision=args.precision, channels_last=args.channels_last)
    print(bench.format_report(result))
    return 0


def _add_speed_options(parser: argparse.ArgumentParser) -> None:
    from subsetlib.train import PRECISIONS

    parser.add_argument("--precision", default="fp32", help=f"{', '.join(PRECISIONS)} (bf16: autocast, CPU too)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="NHWC memory format for images (default: on)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake ends like every other user error: one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"subsetlib: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from subsetlib.data import dataset_names
    from subsetlib.models import model_names
    from subsetlib.train import OPTIMIZERS

    parser = _Parser(prog="python -m subsetlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    models, datasets = ", ".join(model_names()), ", ".join(dataset_names())

    q = sub.add_parser("q", help="P, and K and Q = K*M/P for subsets of a dataset")
    q.add_argument("--model", default="cnn-simple", help=f"{models}, or a torchvision model name")
    q.add_argument("--dataset", default="mnist", help=datasets)
    q.add_argument("--fractions", type=float, nargs="+", default=[1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32])
    q.add_argument("--target-q", type=float, nargs="*", default=[1.5, 2, 3])
    q.set_defaults(func=cmd_q)

    run = sub.add_parser("run", help="train one protocol on real data and store the result")
    run.add_argument("--protocol", choices=["conventional", "subset", "growing"], default="conventional")
    run.add_argument("--dataset", default="mnist", help=datasets)
    run.add_argument("--model", default="cnn-simple", help=models)
    run.add_argument("--fraction", type=float, help="subset fraction in (0, 1] (subset, growing)")
    run.add_argument("--target-q", type=float, help="choose the subset by its Q instead (subset)")
    run.add_argument("--epochs", type=_positive_int, default=5, help="full-set epochs (conventional, fine-tuning)")
    run.add_argument("--subset-epochs", type=_positive_int, default=10, help="epochs per subset phase or stage")
    run.add_argument("--seeds", type=int, nargs="+", default=[0])
    run.add_argument("--batch-size", type=_positive_int, default=128)
    run.add_argument("--optimizer", default="adam", help=", ".join(OPTIMIZERS))
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--eval-every", type=float, default=0.5, help="epoch-equivalents between evaluations")
    run.add_argument("--augment", action="store_true")
    _add_speed_options(run)
    run.add_argument("--results", default="results/adhoc")
    run.add_argument("--data", help="data root (default: $SUBSETLIB_DATA, ./data, ../shared/data)")
    run.add_argument("--device", default="auto")
    run.set_defaults(func=cmd_run)

    batch = sub.add_parser("batch", help="run a grid of notebooks with papermill on Dask (resumable)")
    batch.add_argument("grid", help="grid YAML file, e.g. grids/quick.yaml")
    batch.add_argument("--retry-failed", action="store_true", help="rerun cells that failed before")
    batch.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    batch.add_argument("--workers", type=_positive_int, help="local workers (default: one per GPU, else per core)")
    batch.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    batch.set_defaults(func=cmd_batch)

    bench = sub.add_parser("bench", help="samples/s of the GPU-resident loop against a DataLoader loop")
    bench.add_argument("--dataset", default="mnist", help=datasets)
    bench.add_argument("--model", default="cnn-simple", help=models)
    bench.add_argument("--batch-size", type=_positive_int, default=128)
    bench.add_argument("--steps", type=_positive_int, default=300)
    bench.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    bench.add_argument("--augment", action="store_true")
    _add_speed_options(bench)
    bench.add_argument("--variants", action="store_true",
                       help="instead: peak probe, then bare step / loop / evaluation rates of every precision variant")
    bench.add_argument("--data", help="data root")
    bench.add_argument("--device", default="auto")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"subsetlib: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("subsetlib: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
