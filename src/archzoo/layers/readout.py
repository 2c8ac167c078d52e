r"""Graph-level readouts: one vector per graph from the node states of a PyG mini-batch.

A mini-batch of graphs is one big disconnected graph whose ``batch`` vector gives each
node's graph, :math:`b_v \in \{0, \dots, G-1\}`. A readout maps the node states
:math:`H \in \mathbb{R}^{N \times D}` to :math:`\mathbb{R}^{G \times D'}`, invariant to
the order of each graph's nodes:

.. math::
    \text{mean: } \frac{1}{|V_g|} \sum_{v \in V_g} h_v, \qquad
    \text{max: } \max_{v \in V_g} h_v, \qquad
    \text{sum: } \sum_{v \in V_g} h_v

* **attention** (global attention pooling, Li et al. 2016, https://arxiv.org/abs/1511.05493):
  a gate scores each node, :math:`a_v = \mathrm{softmax}_{v \in V_g}(w^\top h_v + c)`, and
  the readout is :math:`\sum_v a_v\, h_v`.
* **set2set** (Vinyals et al. 2016, https://arxiv.org/abs/1511.06391): an LSTM run for
  ``steps`` steps whose query :math:`q_t` attends over the nodes,
  :math:`r_t = \sum_v \mathrm{softmax}_v(h_v^\top q_t)\, h_v`, and reads
  :math:`q^*_t = [q_t, r_t]` back in; the output is :math:`q^*_T`, :math:`2D` wide.

Sum keeps the count of nodes (GIN's choice, Xu et al. 2019: it tells multisets apart that mean
and max confuse); mean and max do not. All five run on PyG's pooling modules
(``global_*_pool``, ``AttentionalAggregation``, ``Set2Set``), which fall back to torch's
``scatter_reduce`` without torch-scatter.
"""

from __future__ import annotations

from torch import Tensor, nn

from archzoo.errors import UserError

#: The readouts :class:`Readout` knows by name.
READOUTS = ("mean", "max", "sum", "attention", "set2set")


class Readout(nn.Module):
    """Pool node states into graph states by ``name``; :attr:`out_dim` is the output width.

    Args:
        name: one of :data:`READOUTS`.
        dim: node state width :math:`D`.
        steps: Set2Set's processing steps (default 3; ``set2set`` only).

    Shapes:
        ``x`` :math:`(N, D)`, ``batch`` :math:`(N,)` graph ids in ``[0, num_graphs)``;
        output :math:`(G, D)`, or :math:`(G, 2D)` for ``set2set``.
    """

    def __init__(self, name: str, dim: int, steps: int = 3) -> None:
        super().__init__()
        if name not in READOUTS:
            raise UserError(f"Unknown readout '{name}'; choose one of {', '.join(READOUTS)}.")
        if steps < 1:
            raise UserError(f"Set2Set needs at least one processing step, got {steps}.")
        self.name, self.dim = name, dim
        self.out_dim = 2 * dim if name == "set2set" else dim
        self.pool: nn.Module | None = None
        if name == "attention":
            from torch_geometric.nn.aggr import AttentionalAggregation

            self.pool = AttentionalAggregation(gate_nn=nn.Linear(dim, 1))
        elif name == "set2set":
            from torch_geometric.nn.aggr import Set2Set

            self.pool = Set2Set(dim, processing_steps=steps)

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        if self.pool is not None:
            return self.pool(x, batch, dim_size=num_graphs)  # (G, out_dim)
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

        pool = {"mean": global_mean_pool, "max": global_max_pool, "sum": global_add_pool}[self.name]
        return pool(x, batch, size=num_graphs)  # (G, D)

    def extra_repr(self) -> str:
        return f"{self.name}, dim={self.dim}, out_dim={self.out_dim}"
