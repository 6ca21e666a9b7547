"""Planning subsets for a model and a dataset: P of the model as the runs build it, K and Q of subsets, the fraction
for a target Q, and the Q planner page's offline calculator.

Models are built on the ``meta`` device to count their parameters and FLOPs: no memory, no weights drawn, so planning
never moves the global random state that a run's initialisation depends on.

The calculator needs, for each model/dataset pair, P, M, the training-set size N and the FLOPs of one training step
per example; the page embeds them as JSON with plain JavaScript, so that a reader can try any fraction or target Q
without running Python and without loading anything from the network.
"""

import html
import json
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from subsetlib import q
from subsetlib.data import Dataset
from subsetlib.errors import UserError, check_fraction
from subsetlib.models import build_model
from subsetlib.q import min_subset_size, overdetermination_ratio
from subsetlib.registry import DatasetSpec, dataset_spec
from subsetlib.subsets import drawn_size
from subsetlib.train import FlopMeter


def meta_model(model: str, spec: DatasetSpec) -> nn.Module:
    """``model`` built for the dataset's input shape and classes, as the runs build it, on the meta device."""
    with torch.device("meta"):
        return build_model(model, spec.shape, spec.num_classes)


def count_parameters(model: str, spec: DatasetSpec) -> int:
    """P of the named ``model`` for this dataset (``q.count_parameters`` counts a built module)."""
    return q.count_parameters(meta_model(model, spec))


def size_for_q(p: int, m: int, n: int, target_q: float, what: str, fix: str = "choose a smaller target") -> int:
    """The smallest K with K·M/P >= target_q; a target that the ``n`` examples of ``what`` cannot reach is refused."""
    k = min_subset_size(p, m, target_q)
    if k > n:
        raise UserError(f"target Q {target_q} needs K={k} examples but {what} has {n}: {fix}")
    return k


def fraction_for_q(p: int, class_sizes: Sequence[int], target_q: float, what: str) -> tuple[float, int]:
    """The one rule for a subset chosen by target Q, shared by ``q``, ``run``, the planner page and its calculator:
    the fraction is the smallest k/N (k >= the smallest K with K·M/P >= target_q) whose stratified subset, drawn
    as ``subsets.subset_indices`` draws it (round(fraction·N_c) of each class), holds at least that K; its K is
    the size of that subset. Returns (fraction, K)."""
    n, m = sum(class_sizes), len(class_sizes)
    smallest = size_for_q(p, m, n, target_q, what)
    k = smallest
    while drawn_size(class_sizes, k / n) < smallest:  # per-class rounding can fall a few examples short
        k += 1
    return k / n, drawn_size(class_sizes, k / n)


def subset_fraction(model: str, data: Dataset, fraction: float | None = None, target_q: float | None = None
                    ) -> float:
    """The subset's fraction: ``fraction`` as given (it is part of the run id; the phase checks it), or the one
    ``fraction_for_q`` gives for ``target_q``, from the data's own class sizes."""
    if (fraction is None) == (target_q is None):
        raise UserError("give exactly one of fraction or target_q for the subset")
    if fraction is not None:
        return fraction
    sizes = torch.bincount(data.y_train.cpu(), minlength=data.num_classes).tolist()
    return fraction_for_q(count_parameters(model, data.spec), sizes, target_q, data.name)[0]


def q_table(
    model: str,
    dataset: str,
    fractions: Sequence[float] = (1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32),
    target_qs: Sequence[float] = (),
) -> pd.DataFrame:
    """One row per subset: K and Q for each fraction, plus the smallest subset reaching each target Q.

    Uses the dataset's registered size and shape only, so it needs no data files.
    """
    spec = dataset_spec(dataset)
    p = count_parameters(model, spec)
    m, n = spec.num_classes, spec.train_size
    rows = []
    for f in fractions:
        k = round(check_fraction(f) * n)
        rows.append({"fraction": f, "K": k, "Q": overdetermination_ratio(k, m, p), "target_q": None})
    for target in target_qs:
        if min_subset_size(p, m, target) > n:  # not reachable: the K it would need
            k, f = min_subset_size(p, m, target), min_subset_size(p, m, target) / n
        else:
            f, k = fraction_for_q(p, spec.class_sizes(), target, dataset)
        rows.append({"fraction": f, "K": k, "Q": overdetermination_ratio(k, m, p), "target_q": target,
                     "K_min": min_subset_size(p, m, target)})
    table = pd.DataFrame(rows).assign(model=model, dataset=dataset, P=p, M=m, K_full=n)
    if "K_min" not in table:
        table["K_min"] = float("nan")
    table["feasible"] = table["K"] <= n
    return table[["model", "dataset", "P", "M", "K_full", "fraction", "K", "K_min", "Q", "target_q", "feasible"]]


def target_text(row: pd.Series) -> str:
    """A target-Q row of ``q_table`` for a reader: the stratified subset's K, with ⌈Q·P/M⌉ beside it where per-class
    rounding made the subset larger ('3,600 (⌈Q·P/M⌉ = 3,592)'), or why the target cannot be reached."""
    k, smallest, n = int(row["K"]), int(row["K_min"]), int(row["K_full"])
    if not row["feasible"]:
        return f"not reachable (needs {smallest:,} of {n:,})"
    return f"{k:,}" if k == smallest else f"{k:,} (⌈Q·P/M⌉ = {smallest:,})"


def pairs(model_names: Sequence[str], dataset_names: Sequence[str]) -> list[dict]:
    """P, M, N and training FLOPs per example (forward + loss + backward at batch size 1) per model/dataset pair,
    each model built for the dataset's input shape and classes, as the runs build it."""
    rows = []
    for name in dataset_names:
        spec = dataset_spec(name)
        for model_name in model_names:
            model = meta_model(model_name, spec)  # FlopCounterMode counts on the meta device as on a real one
            rows.append({"model": model_name, "dataset": name, "dataset_title": spec.title,
                         "P": q.count_parameters(model), "M": spec.num_classes, "N": spec.train_size,
                         "class_sizes": list(spec.class_sizes()),
                         "flops_per_example": FlopMeter(model, spec.shape, spec.num_classes)(1)})
    return rows


_SCRIPT = """
(function () {
  var root = document.getElementById(%(id)s);
  var pairs = JSON.parse(document.getElementById(%(data_id)s).textContent);
  var field = function (name) { return root.querySelector('[name="' + name + '"]'); };
  var out = function (name, text) { root.querySelector('[data-out="' + name + '"]').textContent = text; };
  var whole = function (v) { return Math.round(v).toLocaleString('en-US'); };
  // as Python's round (half to even) and planner.fraction_for_q: the stratified subset's K for a target Q
  var roundEven = function (x) {
    var r = Math.round(x); return (Math.abs(x %% 1) === 0.5 && r %% 2 !== 0) ? r - 1 : r; };
  var drawn = function (pair, f) { return pair.class_sizes.reduce(function (sum, c) {
    return sum + Math.max(1, roundEven(f * c)); }, 0); };
  var drawnForQ = function (pair, smallest) { var k = smallest;
    while (drawn(pair, k / pair.N) < smallest) { k += 1; } return drawn(pair, k / pair.N); };
  var sig = function (v) { return Number(v.toPrecision(3)).toLocaleString('en-US', {maximumFractionDigits: 20}); };
  function update() {
    var model = field('model').value, dataset = field('dataset').value, mode = field('mode').value;
    var value = parseFloat(field('value').value);
    var pair = pairs.find(function (p) { return p.model === model && p.dataset === dataset; });
    var k = NaN, problem = '';
    if (mode === 'fraction') {
      if (!(value > 0 && value <= 1)) { problem = 'The fraction must lie in (0, 1], e.g. 0.0625 for 1/16.'; }
      else { k = Math.round(value * pair.N); }
    } else if (!(value > 0 && isFinite(value))) {
      problem = 'The target Q must be a number above 0.';
    } else {
      k = Math.ceil(value * pair.P / pair.M - 1e-9);
      if (k > pair.N) { problem = 'Not reachable: Q ' + value + ' needs K = ' + whole(k) + ' examples, but the ' +
                                  'training set has ' + whole(pair.N) + '.'; }
      else { k = drawnForQ(pair, k); }
    }
    out('P', whole(pair.P)); out('M', whole(pair.M)); out('N', whole(pair.N));
    out('problem', problem);
    var ok = problem === '';
    out('K', ok ? whole(k) : '\\u2013');
    out('Q', ok ? sig(k * pair.M / pair.P) : '\\u2013');
    out('epochs', ok ? sig(k / pair.N) : '\\u2013');
    out('gflops', ok ? sig(k * pair.flops_per_example / 1e9) : '\\u2013');
    root.setAttribute('data-ready', 'yes');
  }
  root.addEventListener('input', update);
  root.addEventListener('change', update);
  update();
})();
"""


def calculator_html(rows: Sequence[dict], element_id: str = "subsetlib-planner", fraction: float = 1 / 16) -> str:
    """The calculator as one HTML fragment (form, data, script), for ``IPython.display.HTML``.

    K is the subset size: round(fraction·N) for a fraction, else the smallest K with K·M/P ≥ the target Q (as
    ``q_table`` computes them). One subset epoch costs K/N epoch-equivalents and K × FLOPs per example.
    """
    if not rows:
        raise ValueError("the calculator needs at least one model/dataset pair")
    data_id = f"{element_id}-data"
    payload = json.dumps(list(rows)).replace("</", "<\\/")
    models_ = list(dict.fromkeys(r["model"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    titles = {r["dataset"]: r["dataset_title"] for r in rows}

    def options(values: list[str], label: dict | None = None) -> str:
        return "".join(f'<option value="{html.escape(v)}">{html.escape((label or {}).get(v, v))}</option>'
                       for v in values)

    def output(name: str, text: str) -> str:
        return (f'<tr><td style="padding:2px 8px">{text}</td>'
                f'<td data-out="{name}" style="padding:2px 8px;text-align:right"></td></tr>')

    return (
        f'<div id="{html.escape(element_id)}" class="subsetlib-planner" style="max-width:100%;margin-bottom:1em">'
        f'<form onsubmit="return false" style="display:flex;flex-wrap:wrap;gap:0.5em 1.5em;align-items:end">'
        f'<label>model<br><select name="model">{options(models_)}</select></label>'
        f'<label>dataset<br><select name="dataset">{options(datasets, titles)}</select></label>'
        f'<label>choose the subset by<br><select name="mode"><option value="fraction">fraction of the training set'
        f'</option><option value="q">target Q</option></select></label>'
        f'<label>value<br><input name="value" type="number" step="any" min="0" value="{fraction:g}" '
        f'style="width:8em"></label></form>'
        f'<p data-out="problem" style="color:#b00020;min-height:1.2em;margin:0.5em 0"></p>'
        f'<table class="subsetlib-table" style="font-size:0.9em;border-collapse:collapse"><tbody>'
        + output("P", "P (trainable parameters)") + output("M", "M (outputs per example)")
        + output("N", "N (training-set size)") + output("K", "K (examples in the subset)")
        + output("Q", "Q = K·M/P of the subset")
        + output("epochs", "one subset epoch (epoch-equivalents: K/N, the fraction)")
        + output("gflops", "one subset epoch (training GFLOPs, forward + backward)")
        + f'</tbody></table><script type="application/json" id="{html.escape(data_id)}">{payload}</script>'
        f'<script>{_SCRIPT % {"id": json.dumps(element_id), "data_id": json.dumps(data_id)}}</script></div>'
    )
