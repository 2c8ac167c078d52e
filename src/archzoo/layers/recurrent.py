r"""Recurrent cells written out from their equations, and a stack of them run over a batch of sequences.

The cells (:class:`ElmanCell`, :class:`LSTMCell`, :class:`GRUCell`) hold their weights under
the names and in the layout of ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell`` (``weight_ih``
:math:`(G H, F)`, ``weight_hh`` :math:`(G H, H)`, ``bias_ih``, ``bias_hh`` :math:`(G H,)`,
the :math:`G` gate blocks stacked in torch's order), so torch's weights load into them and
back. Each cell splits a step into the part that depends on the input only,
:meth:`project` (one matmul for every time step at once), and the part the recurrence
needs, :meth:`recur`; :class:`Recurrent` calls the same two functions, so the equations
live in one place.

:class:`Recurrent` is the written-out form of ``nn.RNN``/``nn.LSTM``/``nn.GRU``
(``batch_first=True``): the same arguments, the same ``state_dict`` keys
(``weight_ih_l0``, ``weight_hh_l1_reverse``, ...) and the same ``(output, state)``.
It loops over time steps in Python (the recurrence needs it), never over samples.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError

#: A cell's state as :meth:`recur` carries it: ``(h,)`` for the Elman and GRU cells, ``(h, c)`` for the LSTM.
CellState = tuple[Tensor, ...]


class _Cell(nn.Module, ABC):
    """The weights every cell has, laid out as torch's cells lay them out, and one step from them."""

    #: Gate blocks stacked in ``weight_ih`` / ``weight_hh``.
    gates: int = 1
    #: Tensors in the state: 1 (``h``) or 2 (``(h, c)``).
    state_size: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight from :math:`\\mathcal{U}(-1/\\sqrt{H}, 1/\\sqrt{H})`, as torch initialises them."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    # Subclasses write the equations in these two.
    @staticmethod
    @abstractmethod
    def project(x: Tensor, weight_ih: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None) -> Tensor:
        """The input's part of the gates for every time step at once, :math:`(B, T, G H)`."""

    @staticmethod
    @abstractmethod
    def recur(gi: Tensor, state: CellState, weight_hh: Tensor, bias_hh: Tensor | None, **kwargs: str) -> CellState:
        """One step of the recurrence from the projected input ``gi`` and the last state."""

    def step_options(self) -> dict[str, str]:
        """Keyword arguments of :meth:`recur` beyond the weights (the Elman cell's nonlinearity)."""
        return {}

    def init_state(self, x: Tensor) -> CellState:
        """Zeros, :math:`(B, H)` each."""
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        return (zeros,) * self.state_size

    def forward(self, x: Tensor, state: Tensor | tuple[Tensor, Tensor] | None = None) -> Tensor | tuple[Tensor, Tensor]:
        s: CellState = self.init_state(x) if state is None else (state,) if isinstance(state, Tensor) else tuple(state)
        gi = self.project(x, self.weight_ih, self.bias_ih, self.bias_hh)  # (B, G H)
        new = self.recur(gi, s, self.weight_hh, self.bias_hh, **self.step_options())
        return new[0] if self.state_size == 1 else (new[0], new[1])

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class ElmanCell(_Cell):
    r"""The simple recurrent network of Elman, `"Finding Structure in Time"
    <https://doi.org/10.1207/s15516709cog1402_1>`_ (Cognitive Science 1990): the new state
    is a nonlinearity of the input and the previous state.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    with :math:`\phi` = tanh or ReLU. The weights are ``nn.RNNCell``'s.

    Args:
        input_size: input features :math:`F`.
        hidden_size: state width :math:`H`.
        bias: learn :math:`b_{ih}` and :math:`b_{hh}` (default True).
        nonlinearity: ``"tanh"`` or ``"relu"`` (default ``"tanh"``).

    Shapes:
        input :math:`(B, F)` and an optional state :math:`(B, H)`; output the new state :math:`(B, H)`.
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise UserError(f"nonlinearity must be 'tanh' or 'relu', got '{nonlinearity}'.")
        super().__init__(input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity

    @staticmethod
    def project(x: Tensor, weight_ih: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None) -> Tensor:
        # Both biases join the input's part: W_ih x + b_ih + b_hh, for every time step at once.
        return F.linear(x, weight_ih, None if bias_ih is None else bias_ih + bias_hh)

    @staticmethod
    def recur(
        gi: Tensor, state: CellState, weight_hh: Tensor, bias_hh: Tensor | None, nonlinearity: str = "tanh"
    ) -> CellState:
        pre = torch.addmm(gi, state[0], weight_hh.t())  # (B, H): W_ih x + b + W_hh h, the biases already in gi
        return (torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre),)

    def step_options(self) -> dict[str, str]:
        return {"nonlinearity": self.nonlinearity}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity}"


class LSTMCell(_Cell):
    r"""The long short-term memory cell of Hochreiter & Schmidhuber, `"Long Short-Term Memory"
    <https://doi.org/10.1162/neco.1997.9.8.1735>`_ (Neural Computation 1997), with the forget
    gate of Gers et al. (2000) as ``nn.LSTMCell`` has it: gates decide what the cell state
    :math:`c` forgets, what it writes and what it shows.

    .. math::
        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)
        \end{aligned}

    ``weight_ih`` is :math:`[W_{ii}; W_{if}; W_{ig}; W_{io}]` :math:`(4H, F)`, torch's order.

    Args:
        input_size: input features :math:`F`.
        hidden_size: state width :math:`H`.
        bias: learn the biases (default True).

    Shapes:
        input :math:`(B, F)` and an optional state ``(h, c)``, each :math:`(B, H)`; output the new ``(h, c)``.
    """

    gates = 4
    state_size = 2

    @staticmethod
    def project(x: Tensor, weight_ih: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None) -> Tensor:
        return F.linear(x, weight_ih, None if bias_ih is None else bias_ih + bias_hh)  # (..., 4H)

    @staticmethod
    def recur(gi: Tensor, state: CellState, weight_hh: Tensor, bias_hh: Tensor | None, **kwargs: str) -> CellState:
        h, c = state
        gates = torch.addmm(gi, h, weight_hh.t())  # (B, 4H): W_i x + b + W_h h, the biases already in gi
        # One sigmoid over all four blocks (g's is unused) costs fewer kernels than three.
        i, f, _, o = torch.sigmoid(gates).chunk(4, dim=1)  # (B, H) each
        g = torch.tanh(gates[:, 2 * h.shape[1] : 3 * h.shape[1]])
        c = torch.addcmul(f * c, i, g)  # c_t = f c_{t-1} + i g
        h = o * torch.tanh(c)  # h_t = o tanh(c_t)
        return h, c


class GRUCell(_Cell):
    r"""The gated recurrent unit of Cho et al., `"Learning Phrase Representations using RNN
    Encoder-Decoder for Statistical Machine Translation" <https://arxiv.org/abs/1406.1078>`_
    (EMNLP 2014), as ``nn.GRUCell`` computes it (the reset gate scales :math:`W_{hn} h + b_{hn}`):

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    ``weight_ih`` is :math:`[W_{ir}; W_{iz}; W_{in}]` :math:`(3H, F)`, torch's order.

    Args:
        input_size: input features :math:`F`.
        hidden_size: state width :math:`H`.
        bias: learn the biases (default True).

    Shapes:
        input :math:`(B, F)` and an optional state :math:`(B, H)`; output the new state :math:`(B, H)`.
    """

    gates = 3

    @staticmethod
    def project(x: Tensor, weight_ih: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None) -> Tensor:
        # b_hn stays out: the reset gate multiplies it.
        return F.linear(x, weight_ih, bias_ih)  # (..., 3H)

    @staticmethod
    def recur(gi: Tensor, state: CellState, weight_hh: Tensor, bias_hh: Tensor | None, **kwargs: str) -> CellState:
        (h,) = state
        gh = F.linear(h, weight_hh, bias_hh)  # (B, 3H)
        hs = h.shape[1]
        r, z = torch.sigmoid(gi[:, : 2 * hs] + gh[:, : 2 * hs]).chunk(2, dim=1)  # both gates in one kernel
        n = torch.tanh(torch.addcmul(gi[:, 2 * hs :], r, gh[:, 2 * hs :]))  # tanh(W_in x + b_in + r (W_hn h + b_hn))
        return (torch.lerp(n, h, z),)  # (1 - z) n + z h


#: The cell of each ``mode`` of :class:`Recurrent`.
CELLS: dict[str, type[_Cell]] = {"rnn": ElmanCell, "lstm": LSTMCell, "gru": GRUCell}


def reverse_within(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Each sequence of ``x`` :math:`(T, B, \\dots)` reversed over its own first ``lengths[b]`` steps.

    Steps past a sequence's length stay where they are, so the reversed sequence starts at
    its own last step. Applied twice it gives ``x`` back.
    """
    if lengths is None:
        return x.flip(0)
    t = x.shape[0]
    steps = torch.arange(t, device=x.device)[:, None]  # (T, 1)
    n = lengths.to(x.device)[None, :]  # (1, B)
    idx = torch.where(steps < n, n - 1 - steps, steps)  # (T, B)
    idx = idx.view(t, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)


class Recurrent(nn.Module):
    r"""A stack of recurrent cells over a batch of sequences: the written-out ``nn.RNN``,
    ``nn.LSTM`` and ``nn.GRU`` (``batch_first=True``).

    Layer :math:`l` reads the outputs of layer :math:`l-1` (the input for :math:`l = 0`),
    through dropout in training, except into the first layer; a bidirectional layer runs a
    second cell over the reversed sequence and concatenates both outputs:

    .. math::
        \overrightarrow{h}^{(l)}_t = \mathrm{cell}(x^{(l)}_t, \overrightarrow{h}^{(l)}_{t-1}), \qquad
        \overleftarrow{h}^{(l)}_t = \mathrm{cell}'(x^{(l)}_t, \overleftarrow{h}^{(l)}_{t+1}), \qquad
        x^{(l+1)}_t = \mathrm{dropout}([\overrightarrow{h}^{(l)}_t \,\|\, \overleftarrow{h}^{(l)}_t])

    The parameters are named as torch names them (``weight_ih_l{l}``, ``bias_hh_l{l}_reverse``, ...),
    so ``state_dict`` of one loads into the other. Each layer and direction computes its
    input projection :math:`W_{ih} x_t + b` for every time step in one matmul, then loops
    over :math:`t` for the recurrent part.

    With ``lengths``, a batch of padded sequences is read as ``nn.LSTM`` reads it packed
    (:func:`~torch.nn.utils.rnn.pack_padded_sequence`): the state stops changing after each
    sequence's last step, the backward direction starts at each sequence's own last step,
    and outputs past the end are zero.

    Args:
        mode: ``"rnn"`` (Elman), ``"lstm"`` or ``"gru"``.
        input_size: input features :math:`F`.
        hidden_size: state width :math:`H` per direction.
        num_layers: stacked layers :math:`L` (default 1).
        bias: learn the biases (default True).
        dropout: dropout on each layer's output but the last's, in training (default 0).
        bidirectional: also run each layer backwards, :math:`D = 2` (default False).
        nonlinearity: ``"tanh"`` or ``"relu"``, for ``mode="rnn"`` (default ``"tanh"``).

    Shapes:
        input ``x`` :math:`(B, T, F)`, an optional ``state`` (``h_0``, or ``(h_0, c_0)`` for the
        LSTM, each :math:`(L D, B, H)`) and optional ``lengths`` :math:`(B,)`; output
        :math:`(B, T, D H)` and the final state in the layout of ``state``.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        if mode not in CELLS:
            raise UserError(f"Recurrent mode must be one of {', '.join(CELLS)}, got '{mode}'.")
        if num_layers < 1:
            raise UserError(f"Recurrent num_layers must be at least 1, got {num_layers}.")
        if not 0.0 <= dropout <= 1.0:
            raise UserError(f"Recurrent dropout must be in [0, 1], got {dropout}.")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.directions = 2 if bidirectional else 1
        self.nonlinearity = nonlinearity
        self.cell = CELLS[mode]
        self.step_options = {"nonlinearity": nonlinearity} if mode == "rnn" else {}
        if mode == "rnn" and nonlinearity not in ("tanh", "relu"):
            raise UserError(f"nonlinearity must be 'tanh' or 'relu', got '{nonlinearity}'.")
        self.state_size = self.cell.state_size
        g = self.cell.gates * hidden_size
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * self.directions
            for d in range(self.directions):
                suffix = f"_l{layer}" + ("_reverse" if d == 1 else "")
                self.register_parameter("weight_ih" + suffix, nn.Parameter(torch.empty(g, layer_in)))
                self.register_parameter("weight_hh" + suffix, nn.Parameter(torch.empty(g, hidden_size)))
                for name in ("bias_ih", "bias_hh"):
                    self.register_parameter(name + suffix, nn.Parameter(torch.empty(g)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight from :math:`\\mathcal{U}(-1/\\sqrt{H}, 1/\\sqrt{H})`, as torch initialises them."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, d: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        suffix = f"_l{layer}" + ("_reverse" if d == 1 else "")
        return tuple(getattr(self, n + suffix) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))  # type: ignore[return-value]

    def _run(
        self, gi: Tensor, state: CellState, weight_hh: Tensor, bias_hh: Tensor | None, valid: Tensor | None
    ) -> tuple[Tensor, CellState]:
        """One direction over time: ``gi`` :math:`(T, B, G H)`; the outputs :math:`(T, B, H)` and the final state."""
        recur, opts = self.cell.recur, self.step_options
        outs = []
        for t in range(gi.shape[0]):  # the recurrence: one step after the other
            new = recur(gi[t], state, weight_hh, bias_hh, **opts)
            if valid is not None:  # past a sequence's end its state stays as it was
                keep = valid[t]  # (B, 1)
                new = tuple(torch.where(keep, n, s) for n, s in zip(new, state, strict=True))
            state = new
            outs.append(state[0])
        return torch.stack(outs), state  # (T, B, H)

    def forward(
        self, x: Tensor, state: Tensor | tuple[Tensor, Tensor] | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        if x.dim() != 3:
            raise UserError(f"Recurrent takes a batch (B, T, F), got a tensor of shape {tuple(x.shape)}.")
        b, t, _ = x.shape
        ld = self.num_layers * self.directions
        if state is None:
            zeros = x.new_zeros(ld, b, self.hidden_size)
            init: tuple[Tensor, ...] = (zeros,) * self.state_size
        else:
            init = (state,) if isinstance(state, Tensor) else tuple(state)
        valid = None
        if lengths is not None:
            lengths = lengths.to(x.device)
            valid = (torch.arange(t, device=x.device)[:, None] < lengths[None, :])[..., None]  # (T, B, 1)
        seq = x.transpose(0, 1)  # (T, B, F): gi[t] is then one contiguous block per step
        finals: list[list[Tensor]] = [[] for _ in range(self.state_size)]
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                seq = F.dropout(seq, self.dropout, training=True)
            outs = []
            for d in range(self.directions):
                k = layer * self.directions + d
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d)
                inp = seq if d == 0 else reverse_within(seq, lengths)
                gi = self.cell.project(inp, w_ih, b_ih, b_hh)  # (T, B, G H): every step in one matmul
                out, last = self._run(gi, tuple(s[k] for s in init), w_hh, b_hh, valid)
                outs.append(out if d == 0 else reverse_within(out, lengths))
                for i, s in enumerate(last):
                    finals[i].append(s)
            seq = outs[0] if self.directions == 1 else torch.cat(outs, dim=2)  # (T, B, D H)
        if valid is not None:
            seq = seq * valid  # zeros past each sequence's end, as pad_packed_sequence gives
        final = tuple(torch.stack(f) for f in finals)  # (L D, B, H) each
        return seq.transpose(0, 1), final[0] if self.state_size == 1 else (final[0], final[1])

    def extra_repr(self) -> str:
        s = f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.mode == "rnn":
            s += f", nonlinearity={self.nonlinearity}"
        return s


#: The nonlinearities :class:`Stacked` puts between its recurrent layers.
BETWEEN = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


class Stacked(nn.Module):
    r"""Single-layer recurrent layers one above the other, a position-wise map and nonlinearity between them.

    Between layer :math:`l-1` and layer :math:`l` each step's output passes through
    its own affine map and a nonlinearity :math:`\phi` (tanh, ReLU or GELU), then dropout:

    .. math::
        u^{(l)}_t = \mathrm{dropout}\big(\phi(A^{(l)} o^{(l-1)}_t + a^{(l)})\big), \qquad
        o^{(l)}, h^{(l)}_T = \mathrm{RNN}^{(l)}(u^{(l)}, h^{(l)}_0)

    A plain stack (``nn.LSTM(num_layers=L)``) feeds :math:`o^{(l-1)}` to layer :math:`l`
    as it is; the map adds a learned change of basis and a nonlinearity of its own at
    every level (the "deep transition" of Pascanu et al. 2014, *How to Construct Deep
    Recurrent Neural Networks*, between layers instead of inside the step).

    It takes and returns what the stack it replaces does: a batch-first tensor or a
    ``PackedSequence`` (the map acts on the packed data, so padding never enters it),
    ``lengths`` for written-out :class:`Recurrent` layers, and the state laid out
    :math:`(L D, B, H)` (a pair for the LSTM), so a language model carries it across
    batches unchanged.

    Args:
        layers: the recurrent layers, each with one layer (``nn.LSTM``/``nn.GRU``/``nn.RNN``
            or :class:`Recurrent`); all have the same hidden size and directions.
        nonlinearity: ``"tanh"``, ``"relu"`` or ``"gelu"``.
        dropout: dropout after each map (default 0).
    """

    def __init__(self, layers: list[nn.Module], nonlinearity: str, dropout: float = 0.0) -> None:
        super().__init__()
        if nonlinearity not in BETWEEN:
            raise UserError(
                f"the nonlinearity between layers must be one of {', '.join(BETWEEN)}, got '{nonlinearity}'."
            )
        if len(layers) < 2:
            raise UserError("a stack with a nonlinearity between its layers needs at least 2 layers.")
        self.layers = nn.ModuleList(layers)
        first = layers[0]
        self.directions = 2 if first.bidirectional else 1
        width = first.hidden_size * self.directions
        self.maps = nn.ModuleList(nn.Linear(width, width) for _ in layers[1:])
        self.act = BETWEEN[nonlinearity]()
        self.drop = nn.Dropout(dropout)
        self.nonlinearity = nonlinearity

    def _between(self, i: int, out: Tensor | nn.utils.rnn.PackedSequence) -> Tensor | nn.utils.rnn.PackedSequence:
        def f(t: Tensor) -> Tensor:
            return self.drop(self.act(self.maps[i](t)))

        if isinstance(out, nn.utils.rnn.PackedSequence):
            return out._replace(data=f(out.data))
        return f(out)

    def forward(
        self,
        x: Tensor | nn.utils.rnn.PackedSequence,
        state: Tensor | tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor | nn.utils.rnn.PackedSequence, Tensor | tuple[Tensor, Tensor]]:
        d = self.directions
        pair = isinstance(state, tuple)
        out, finals = x, []
        for i, layer in enumerate(self.layers):
            if i:
                out = self._between(i - 1, out)
            s = None
            if state is not None:
                s = tuple(t[i * d : (i + 1) * d] for t in state) if pair else state[i * d : (i + 1) * d]
            out, s = layer(out, s) if lengths is None else layer(out, s, lengths=lengths)
            finals.append(s)
        if isinstance(finals[0], tuple):
            return out, (torch.cat([s[0] for s in finals]), torch.cat([s[1] for s in finals]))
        return out, torch.cat(finals)
