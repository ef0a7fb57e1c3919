"""Every search setting, with its one default and its one check.

:class:`SearchSettings` is what the search reads (:func:`sb3_muzero.mcts.search`), what a
:class:`~sb3_muzero.muzero.policies.MuZeroPolicy` keeps, and where :class:`~sb3_muzero.MuZero` takes
the defaults of its search arguments from. The names are the algorithm's keyword arguments.
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from sb3_muzero.common.numbers import is_int

SEARCH_BACKENDS = ("auto", "cpu", "cuda")
SEARCH_ALGORITHMS = ("puct", "gumbel")

# Names under which policy files written by earlier versions saved these settings.
_FORMER_NAMES = {"discount": "gamma", "dirichlet_alpha": "root_dirichlet_alpha",
                 "noise_fraction": "root_exploration_fraction", "backend": "search_backend"}  # fmt: skip


@dataclass(frozen=True)
class SearchSettings:
    """How the batched tree search runs; checked when made.

    :param num_simulations: simulations per search (one model call each)
    :param gamma: the discount factor, in (0, 1] (single-player games only)
    :param pb_c_init: PUCT constant c1
    :param pb_c_base: PUCT constant c2
    :param root_dirichlet_alpha: concentration of the Dirichlet noise mixed into the root priors in self-play
    :param root_exploration_fraction: weight of that noise, in [0, 1] (0: no noise)
    :param search_backend: "cpu" (Numba), "cuda" (CuPy kernels on the latent's GPU) or "auto" (CUDA when the
        latent is a CUDA tensor and CuPy sees a GPU, else CPU)
    :param search_algorithm: "puct" (MuZero's search: PUCT selection, visit counts as the policy target) or
        "gumbel" (Gumbel MuZero: Sequential Halving with Gumbel at the root, deterministic selection below it,
        softmax(logits + sigma(completed Q)) as the policy target); see :mod:`sb3_muzero.mcts.driver`
    :param max_considered_actions: Gumbel: the number of root actions sampled without replacement (Gumbel-Top-k)
        and searched by Sequential Halving (fewer where fewer actions are legal)
    :param gumbel_c_visit: Gumbel: c_visit of sigma(q) = (c_visit + max_b N(b)) * c_scale * q
    :param gumbel_c_scale: Gumbel: c_scale of sigma(q)
    :param gumbel_min_q_range: Gumbel: the least range sigma rescales a node's completed Q values by, sigma(q) =
        (c_visit + max_b N(b)) * c_scale * (q - min) / max(max - min, gumbel_min_q_range): Q values that differ by
        less are not stretched to the full scale. In units of reward (1 by default: a fraction of a reward is the
        noise of an untrained model's values); mctx's ``epsilon``, which is 1e-8 there
    """

    num_simulations: int = 25
    gamma: float = 0.997
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    root_dirichlet_alpha: float = 0.25
    root_exploration_fraction: float = 0.25
    search_backend: str = "auto"
    search_algorithm: str = "puct"
    max_considered_actions: int = 16
    gumbel_c_visit: float = 50.0
    gumbel_c_scale: float = 0.1
    gumbel_min_q_range: float = 1.0

    def __post_init__(self) -> None:
        if not is_int(self.num_simulations) or self.num_simulations < 1:
            raise ValueError(f"num_simulations must be an integer >= 1, got {self.num_simulations!r}")
        if not (_is_real(self.gamma) and 0.0 < self.gamma <= 1.0):
            raise ValueError(
                f"gamma must be in (0.0, 1.0], got {self.gamma!r}; two-player games "
                "(a negative discount, as in mctx) are not supported: the search is single-player"
            )
        if not (_is_real(self.pb_c_base) and self.pb_c_base > 0 and _is_real(self.pb_c_init)):
            raise ValueError(
                f"pb_c_base must be > 0 and pb_c_init finite, got pb_c_base={self.pb_c_base!r}, pb_c_init={self.pb_c_init!r}"
            )
        if not (_is_real(self.root_exploration_fraction) and 0.0 <= self.root_exploration_fraction <= 1.0):
            raise ValueError(f"root_exploration_fraction must be in [0.0, 1.0], got {self.root_exploration_fraction!r}")
        if not (_is_real(self.root_dirichlet_alpha) and self.root_dirichlet_alpha > 0):
            raise ValueError(f"root_dirichlet_alpha must be in (0.0, inf), got {self.root_dirichlet_alpha!r}")
        if self.search_backend not in SEARCH_BACKENDS:
            raise ValueError(f"Unknown search_backend {self.search_backend!r}; supported: {', '.join(SEARCH_BACKENDS)}")
        if self.search_algorithm not in SEARCH_ALGORITHMS:
            raise ValueError(f"Unknown search_algorithm {self.search_algorithm!r}; supported: {', '.join(SEARCH_ALGORITHMS)}")
        if not is_int(self.max_considered_actions) or self.max_considered_actions < 1:
            raise ValueError(f"max_considered_actions must be an integer >= 1, got {self.max_considered_actions!r}")
        if not (_is_real(self.gumbel_c_visit) and self.gumbel_c_visit >= 0):
            raise ValueError(f"gumbel_c_visit must be in [0.0, inf), got {self.gumbel_c_visit!r}")
        if not (_is_real(self.gumbel_c_scale) and self.gumbel_c_scale > 0):
            raise ValueError(f"gumbel_c_scale must be in (0.0, inf), got {self.gumbel_c_scale!r}")
        if not (_is_real(self.gumbel_min_q_range) and self.gumbel_min_q_range > 0):
            raise ValueError(f"gumbel_min_q_range must be in (0.0, inf), got {self.gumbel_min_q_range!r}")

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> "SearchSettings":
        """Settings from :meth:`as_dict`'s output, also under the names that earlier policy files used; settings
        missing from it (files written before they existed) take their defaults."""
        renamed = {_FORMER_NAMES.get(name, name): value for name, value in settings.items()}
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(renamed) - known)
        if unknown:
            raise ValueError(f"Unknown search settings {unknown}; supported: {', '.join(sorted(known))}")
        return cls(**renamed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_real(value: Any) -> bool:
    """A finite int or float (bools excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


DEFAULT_SEARCH_SETTINGS = SearchSettings()
