"""subsetlib: an executable companion to "Efficient Neural Network Training via Subset Pretraining"
(Spörer et al., KDIR 2024, arXiv 2410.16523)."""

from subsetlib.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "__version__"]
