r"""Molecule tasks: graph regression and binary graph classification of PyG batches, and predictions from SMILES.

* ``molecule_regression``: :class:`~archzoo.tasks.regression.Regression` on graph batches
  (MSE on the standardised targets; RMSE, MAE and R² in the original units, counted over
  molecules, not atoms).
* ``molecule_classification``: :class:`~archzoo.tasks.classification.Classification` on
  graph batches, with the ROC-AUC of the positive class's probability beside accuracy
  and macro-F1 (MoleculeNet's metric for BBBP):

.. math::
    \mathrm{AUC} = P\big(\hat p(g^+) > \hat p(g^-)\big)

``archzoo predict RUN "CCO" "c1ccccc1O"`` featurises each SMILES as the run's data was
(:func:`archzoo.data.molecules.smiles_to_graph`) and prints ``SMILES<TAB>value`` (in the
target's original units) or ``SMILES<TAB>class<TAB>probability``; a SMILES RDKit cannot
parse stops it with one sentence naming it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import collected
from archzoo.tasks.classification import Classification, unpack
from archzoo.tasks.regression import Regression


def read_smiles(inputs: list[str], info: dict[str, Any]) -> Any:
    """The SMILES strings as one PyG ``Batch``, featurised as the run's molecules were."""
    from torch_geometric.data import Batch

    from archzoo.data.molecules import FEATURISER_VERSION, smiles_to_graph

    if not info.get("molecules"):
        raise UserError("This run was not trained on molecules; predict takes SMILES only for molecule runs.")
    version = info.get("featuriser_version")
    if version != FEATURISER_VERSION:
        raise UserError(
            f"This run's molecules were featurised by version {version} of the featuriser, "
            f"and this archzoo has version {FEATURISER_VERSION}; retrain the run."
        )
    if not inputs:
        raise UserError("Give at least one SMILES string to predict.")
    return Batch.from_data_list([smiles_to_graph(s) for s in inputs])


class MoleculeRegression(Regression):
    """Graph regression of molecules; ``archzoo predict`` takes SMILES and prints ``SMILES<TAB>value``."""

    export_refusal = (
        "it reads PyG mini-batches of molecular graphs, whose graph count and pooling come from the data's "
        "batch vector, which archzoo export does not trace"
    )

    def read_inputs(self, inputs: list[str], info: dict[str, Any]) -> Any:
        return read_smiles(inputs, info)

    def describe(self, outputs: Any, inputs: list[str], info: dict[str, Any], **options: Any) -> list[str]:
        values = outputs.reshape(len(inputs), -1)  # (G, D)
        return ["\t".join([s, *(f"{v:.4f}" for v in row)]) for s, row in zip(inputs, values.tolist(), strict=True)]


class MoleculeClassification(Classification):
    """Binary graph classification of molecules: accuracy, macro-F1 and ROC-AUC; predict takes SMILES.

    Args:
        label_smoothing: :math:`\\varepsilon` (default 0).

    Metrics: ``loss``, ``acc``, ``f1`` and ``roc_auc`` (of the probability of class 1; NaN for a
    split whose molecules are all of one class, where the AUC is undefined).
    """

    export_refusal = (
        "it reads PyG mini-batches of molecular graphs, whose graph count and pooling come from the data's "
        "batch vector, which archzoo export does not trace"
    )

    monitor = "val/roc_auc"
    mode = "max"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing=label_smoothing, top_k=0)

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        if int(info.get("num_classes", 0)) != 2:
            raise UserError(f"molecule_classification is binary; this dataset has {info.get('num_classes')} classes.")
        super().setup(model, info, device)
        import torchmetrics

        self.auroc = {s: torchmetrics.classification.BinaryAUROC().to(device) for s in ("train", "val", "test")}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        x, y = unpack(batch)
        logits = model(x).float()  # (G, 2)
        self.update_metrics(split, logits, y)
        self.auroc[split].update(logits.softmax(-1)[:, 1], y)

    def compute(self, split: str) -> dict[str, float]:
        out = collected(self.metrics[split], split)
        auroc = self.auroc[split]
        seen = torch.cat(auroc.target) if auroc.target else torch.empty(0)  # the labels of the split
        # With one class only, the AUC is undefined (torchmetrics would return 0): NaN says so.
        out[f"{split}/roc_auc"] = float(auroc.compute()) if seen.unique().numel() == 2 else math.nan
        auroc.reset()
        return out

    def read_inputs(self, inputs: list[str], info: dict[str, Any]) -> Any:
        return read_smiles(inputs, info)

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        return model(batch).float().softmax(-1)  # (G, 2)


@register_task("molecule_regression")
def molecule_regression(loss: str = "mse") -> MoleculeRegression:
    return MoleculeRegression(loss=loss)


@register_task("molecule_classification")
def molecule_classification(label_smoothing: float = 0.0) -> MoleculeClassification:
    return MoleculeClassification(label_smoothing=label_smoothing)
