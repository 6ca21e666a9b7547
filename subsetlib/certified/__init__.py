"""The study at certified minima: the paper's claim judged where minima exist (squared error or cross-entropy, each
with an L2 term, in float64, on the full batch) and are proven (gradient norm and the Hessian's smallest eigenvalue).

``design`` (what runs: datasets, widths, objectives, Q grid, seeds, caps) → ``runs`` (train what is missing; load what
is stored: two calls) → ``rules`` (the verdicts, on plain tables) → ``analysis`` (stored rows to tables) → ``words``
(the pages' sentences). The minimiser and its certificate are ``subsetlib.minimise``.
"""
