r"""Relational entity graphs for R-GCN: AIFB and MUTAG (the RDF benchmarks of Ristoski et al. 2016).

Schlichtkrull et al. (2018, https://arxiv.org/abs/1703.06103) classify entities of a
knowledge graph from its triples alone: the research group of an AIFB staff member, and
whether a MUTAG compound is mutagenic. The files are those PyG's
:class:`~torch_geometric.datasets.Entities` reads (DGL's archives), under
``<data root>/entities/<name>/raw``: ``<name>_stripped.nt.gz`` (the N-Triples with the
target relation removed), ``completeDataset.tsv``, ``trainingSet.tsv`` and ``testSet.tsv``
(the paper's stratified 80/20 split).

The graph is PyG's: every RDF term (subject or object: URI, blank node or literal) is a
node; each predicate :math:`p` gives two relations, :math:`2p` for :math:`s \to o` and
:math:`2p+1` for the inverse :math:`o \to s`; the predicates are numbered by decreasing
frequency; the edges are sorted by (source, target, relation). AIFB: 8,285 nodes, 58,086
edges, 90 relations, 4 classes, 140/36 labelled; MUTAG: 23,644 nodes, 148,454 edges, 46
relations, 2 classes, 272/68.

Why not PyG's reader itself: ``Entities.process`` numbers the nodes in the order of a Python
``set`` of rdflib terms, breaks ties between equally frequent predicates in set order and
numbers AIFB's classes from a ``set`` of label URIs; strings hash differently in every
process (``PYTHONHASHSEED``), so node, relation and class ids, and with them the model's
embedding rows and any resumed checkpoint, would change from run to run. This reader parses
the same files with rdflib and **sorts**: nodes by (kind, text, N3 form), predicates by
(decreasing frequency, URI), classes by name. N-Triples blank nodes are skolemised
(rdflib's ``skolemize=True``: ``_:b1`` becomes a fixed genid URI) instead of getting fresh
random ids, so they sort the same way in every process too. Nodes are keyed by their rdflib
term, so a literal and a URI with the same text stay two nodes, as two distinct terms are.

The parsed graph is cached (``torch.save`` of plain tensors, read back with
``weights_only=True``) under archzoo's cache folder, keyed by the raw files' SHA-256.

Splits: the official test set is the test split; a validation split is carved from the
training nodes, stratified by class with a fixed seed (``val_fraction``, default 0.2, as the
paper held out 20% of the training set for model selection); ``val_fraction=0`` keeps all
training nodes for training and makes the validation split the training nodes themselves
(the engine then monitors training figures).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from archzoo.data.graphs import DATA_SEED, check_graph
from archzoo.data.root import PathLike, cache_dir, find_dataset_dir, read_cache_tensors
from archzoo.data.splits import DataBundle, FullGraph
from archzoo.errors import DataError, UserError
from archzoo.registry import register_dataset

#: The folder name, the node column and the label column of each graph's TSV files.
ENTITIES = {
    "aifb": ("aifb", "person", "label_affiliation"),
    "mutag": ("mutag", "bond", "label_mutagenic"),
}
TSV_FILES = ("completeDataset.tsv", "trainingSet.tsv", "testSet.tsv")
#: Bump when the parsing changes, so older caches are not read.
CACHE_VERSION = 1
#: Label of a node outside the labelled sets (cross-entropy's ``ignore_index``).
UNLABELLED = -100


def _raw_files(name: str) -> list[str]:
    return [f"{name}_stripped.nt.gz", *TSV_FILES]


def _term_key(term: Any) -> tuple[int, str, str]:
    """A total order on rdflib terms that does not depend on the process: (kind, text, N3 form)."""
    from rdflib import BNode, Literal

    kind = 2 if isinstance(term, Literal) else 1 if isinstance(term, BNode) else 0
    return kind, str(term), term.n3()


def _label_text(value: Any) -> str:
    """A class label as text: ``1.0`` and ``1`` (MUTAG's two spellings) both become ``"1"``."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _read_tsv(path: Path, node_col: str, label_col: str) -> tuple[list[str], list[str]]:
    import pandas as pd

    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path} could not be read as a TSV file ({type(e).__name__}: {e}).") from None
    missing = [c for c in (node_col, label_col) if c not in df.columns]
    if missing:
        raise DataError(f"{path} has no column {', '.join(map(repr, missing))} (its columns: {', '.join(df.columns)}).")
    if len(df) == 0:
        raise DataError(f"{path} lists no labelled entities.")
    return df[node_col].str.strip().tolist(), [_label_text(v) for v in df[label_col]]


def parse_entities(raw: Path, name: str) -> dict[str, Any]:
    """Read one entity graph from its raw files into sorted, process-independent ids.

    Returns a dict of tensors and lists: ``edge_index`` :math:`(2, E)`, ``edge_type`` :math:`(E,)`,
    ``num_nodes``, ``num_relations`` (inverses included), ``train_idx``/``train_y``,
    ``test_idx``/``test_y`` (in the TSV files' row order), ``classes`` and ``relations``
    (the predicate URIs, relation ``2k`` and ``2k+1`` being predicate ``k`` and its inverse) and
    ``nodes`` (each node's term in N-Triples syntax: ``<uri>``, ``"text"^^<datatype>``).
    """
    import rdflib
    from rdflib.exceptions import ParserError

    folder, node_col, label_col = ENTITIES[name]
    graph_file = raw / f"{folder}_stripped.nt.gz"
    g = rdflib.Graph()
    log = logging.getLogger("rdflib")
    level = log.level
    log.setLevel(logging.ERROR)  # rdflib warns of every literal whose lexical form is not its datatype's
    try:
        with gzip.open(graph_file, "rb") as f:
            g.parse(file=f, format="nt", skolemize=True)  # type: ignore[arg-type]
    except (OSError, EOFError, ValueError, SyntaxError, ParserError) as e:
        raise DataError(f"{graph_file} could not be parsed as gzipped N-Triples ({type(e).__name__}: {e}).") from None
    finally:
        log.setLevel(level)
    if len(g) == 0:
        raise DataError(f"{graph_file} holds no triples.")

    freq: dict[Any, int] = {}
    for p in g.predicates(unique=False):
        freq[p] = freq.get(p, 0) + 1
    predicates = sorted(freq, key=lambda p: (-freq[p], str(p)))  # PyG's order, ties by URI
    nodes = sorted(set(g.subjects()) | set(g.objects()), key=_term_key)
    node_id = {t: i for i, t in enumerate(nodes)}
    pred_id = {p: i for i, p in enumerate(predicates)}
    n, r = len(nodes), 2 * len(predicates)

    triples = torch.tensor([(node_id[s], pred_id[p], node_id[o]) for s, p, o in g], dtype=torch.long)  # (T, 3)
    s, p, o = triples.unbind(1)
    src = torch.cat([s, o])  # s -> o as relation 2p, o -> s as its inverse 2p + 1
    dst = torch.cat([o, s])
    rel = torch.cat([2 * p, 2 * p + 1])
    order = torch.argsort(src * (n * r) + dst * r + rel)  # PyG's edge order: by source, target, relation
    edge_index = torch.stack([src[order], dst[order]])  # (2, 2T)
    edge_type = rel[order]  # (2T,)

    _, all_labels = _read_tsv(raw / "completeDataset.tsv", node_col, label_col)
    classes = sorted(set(all_labels))
    class_id = {c: i for i, c in enumerate(classes)}
    out: dict[str, Any] = {
        "edge_index": edge_index,
        "edge_type": edge_type,
        "num_nodes": n,
        "num_relations": r,
        "num_triples": len(triples),
        "classes": classes,
        "relations": [str(p) for p in predicates],
        "nodes": [t.n3() for t in nodes],  # node i's term in N-Triples syntax
    }
    by_uri = {str(t): i for t, i in node_id.items() if not isinstance(t, rdflib.Literal)}
    for split, file in (("train", "trainingSet.tsv"), ("test", "testSet.tsv")):
        ents, labels = _read_tsv(raw / file, node_col, label_col)
        absent = [e for e in ents if e not in by_uri]
        if absent:
            raise DataError(f"{raw / file}: {len(absent)} labelled entities are not in the graph, such as {absent[0]}.")
        unknown = sorted(set(labels) - set(class_id))
        if unknown:
            raise DataError(f"{raw / file}: label {unknown[0]!r} is not among the classes of completeDataset.tsv.")
        out[f"{split}_idx"] = torch.tensor([by_uri[e] for e in ents], dtype=torch.long)
        out[f"{split}_y"] = torch.tensor([class_id[lab] for lab in labels], dtype=torch.long)
    both = torch.cat([out["train_idx"], out["test_idx"]])
    if both.unique().numel() != both.numel():
        raise DataError(f"{raw}: an entity is listed twice, or in both trainingSet.tsv and testSet.tsv.")
    return out


def cache_path(raw: Path, name: str) -> Path:
    """The cache file of the parsed ``raw`` files of entities graph ``name``, keyed by their SHA-256."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for f in _raw_files(ENTITIES[name][0]):
        h.update(f.encode() + b"\0" + (raw / f).read_bytes())
    return cache_dir("entities") / f"{name}-{h.hexdigest()[:16]}.pt"


def _cached(raw: Path, name: str) -> dict[str, Any]:
    """:func:`parse_entities`, from the cache when the raw files have been parsed before."""
    path = cache_path(raw, name)
    if path.is_file():
        cached = read_cache_tensors(path)  # None for a damaged or foreign file: parse again and overwrite it
        if isinstance(cached, dict):
            return cached
    parsed = parse_entities(raw, name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(parsed, tmp)
    tmp.replace(path)  # atomic: another process never reads half a file
    return parsed


def _val_from_train(train_idx: torch.Tensor, train_y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Positions in ``train_idx`` held out for validation: ``round(fraction * n_c)`` of each class ``c``."""
    g = torch.Generator().manual_seed(seed)
    held = []
    for c in train_y.unique().tolist():
        pos = (train_y == c).nonzero().flatten()
        pos = pos[torch.randperm(len(pos), generator=g)]
        k = int(round(fraction * len(pos)))
        if k >= len(pos):
            raise UserError(f"data.args.val_fraction={fraction} leaves class {c} no training nodes.")
        held.append(pos[:k])
    return torch.cat(held)


def entities(name: str, data_dir: PathLike | None = None, val_fraction: float = 0.2) -> DataBundle:
    """One entity graph as a :class:`~archzoo.data.splits.FullGraph` with train/val/test node masks.

    Args:
        name: ``aifb`` or ``mutag`` (the RDF MUTAG, not TUDataset's).
        data_dir: the data root (see :func:`archzoo.data.root.data_root`).
        val_fraction: share of each class's training nodes held out for validation, with a
            fixed seed (default 0.2); 0 trains on every training node and validates on them too.
    """
    key = name.lower()
    if key not in ENTITIES:
        raise UserError(f"Unknown entity graph '{name}'; choose one of {', '.join(ENTITIES)}.")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"data.args.val_fraction must be in [0, 1), got {val_fraction}.")
    folder = ENTITIES[key][0]
    raw = find_dataset_dir(
        key.upper(),
        data_dir,
        subdirs=[f"entities/{folder}/raw"],
        required=_raw_files(folder),
        how_to_get=f"extract DGL's {folder}.tgz (the archive PyG's Entities downloads) there",
    )
    from torch_geometric.data import Data

    g = _cached(raw, key)
    n = int(g["num_nodes"])
    y = torch.full((n,), UNLABELLED, dtype=torch.long)
    y[g["train_idx"]] = g["train_y"]
    y[g["test_idx"]] = g["test_y"]
    train, val, test = (torch.zeros(n, dtype=torch.bool) for _ in range(3))
    train[g["train_idx"]] = True
    test[g["test_idx"]] = True
    if val_fraction > 0:
        held = g["train_idx"][_val_from_train(g["train_idx"], g["train_y"], val_fraction, DATA_SEED)]
        train[held] = False
        val[held] = True
    else:
        val = train.clone()
    data = Data(
        edge_index=g["edge_index"],
        edge_type=g["edge_type"],
        y=y,
        train_mask=train,
        val_mask=val,
        test_mask=test,
        num_nodes=n,
    )
    check_graph(data, key.upper())
    r = int(g["num_relations"])
    if int(data.edge_type.min()) < 0 or int(data.edge_type.max()) >= r:
        raise DataError(f"{key.upper()}: edge types must lie in 0..{r - 1}.")
    info: dict[str, Any] = {
        "num_nodes": n,
        "num_relations": r,
        "num_classes": len(g["classes"]),
        "classes": list(g["classes"]),
        "num_edges": int(data.edge_index.size(1)),
        "num_triples": int(g["num_triples"]),
        "split_sizes": [int(train.sum()), int(val.sum()) if val_fraction > 0 else 0, int(test.sum())],
        "kind": "graph_nodes",
    }
    return DataBundle(*FullGraph.splits(data), info=info)


@register_dataset("aifb")
def aifb(data_dir: PathLike | None = None, val_fraction: float = 0.2) -> DataBundle:
    """AIFB: the research group of 176 staff members of a research institute, from 29,043 RDF triples.

    8,285 entities, 90 relations (45 predicates and their inverses), 4 groups; the paper's
    140 training (112 + 28 validation by default) and 36 test people.

    Args:
        val_fraction: share of the training people held out for validation (default 0.2).
    """
    return entities("aifb", data_dir, val_fraction)


@register_dataset("mutag_entities")
def mutag_entities(data_dir: PathLike | None = None, val_fraction: float = 0.2) -> DataBundle:
    """MUTAG as an RDF graph: whether each of 340 compounds is mutagenic, from 74,227 triples.

    23,644 entities, 46 relations (23 predicates and their inverses), 2 classes; the
    paper's 272 training (218 + 54 validation by default) and 68 test compounds. Not
    TUDataset's MUTAG (dataset ``mutag``), which holds the molecules as 188 small graphs.

    Args:
        val_fraction: share of the training compounds held out for validation (default 0.2).
    """
    return entities("mutag", data_dir, val_fraction)
