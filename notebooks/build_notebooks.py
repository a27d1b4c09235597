"""Writes notebooks/01_inspect_graph.ipynb and 02_embeddings.ipynb (without outputs) from the cells below,
so the notebooks' code can be reviewed and diffed as plain Python: `python notebooks/build_notebooks.py`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# The tests point KGPIPE_PIPELINE at a pipeline run in a temporary folder; people get the default pipeline.
SETUP = """\
import os
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import pandas as pd

import kgpipe

# KGPIPE_PIPELINE picks another pipeline; by default the one in pipelines/, from the repository root or notebooks/
PIPELINE = os.environ.get('KGPIPE_PIPELINE') or next(
    p for p in (Path('pipelines/default.yaml'), Path('../pipelines/default.yaml')) if p.exists())
result = kgpipe.run(PIPELINE)   # runs only the stages that are stale; a no-op when everything is up to date
print(result)


def local(iri):
    \"\"\"The local name of an IRI (after the last / or #), for labels.\"\"\"
    return iri.rstrip('/#').rsplit('/', 1)[-1].rsplit('#', 1)[-1] if isinstance(iri, str) else '(none)'"""


def setup(*, graph: bool) -> str:
    """The first code cell: imports (networkx only where a graph is drawn), the pipeline run, and `local`."""
    return SETUP.replace("import networkx as nx\n", "import networkx as nx\n" if graph else "")


INSPECT_GRAPH = [
    new_markdown_cell(
        "# Inspecting the fused knowledge graph\n\n"
        "Run (or load) the default pipeline, then look at the graph the fuse stage built from the text and the "
        "seed KGs: its size, degree distribution, how mentions were merged, how much the source graphs overlap, "
        "the neighbourhood of one entity, and where a triple came from. Only kgpipe's public API is used."),
    new_code_cell(setup(graph=True)),
    new_markdown_cell("## Entities and relations"),
    new_code_cell("""\
entities = kgpipe.load_artifact(PIPELINE, 'fuse.entities')
triples = kgpipe.load_artifact(PIPELINE, 'fuse.triples')
print(f'{len(entities)} entities, {len(triples)} triples, {triples["relation"].nunique()} relations')
entities['type'].map(local).value_counts().rename('entities').to_frame()"""),
    new_code_cell("""\
# a triple's sources are the documents that state it and the seed files that hold it
doc_ids = set(kgpipe.load_artifact(PIPELINE, 'ingest.documents')['doc_id'])
stated = triples['sources'].map(lambda sources: not doc_ids.isdisjoint(sources))
by_relation = triples.assign(relation=triples['relation'].map(local), from_text=stated)
by_relation.groupby('relation').agg(triples=('head', 'size'), from_text=('from_text', 'sum')).sort_values(
    'triples', ascending=False)"""),
    new_markdown_cell("## Degree distribution"),
    new_code_cell("""\
graph = kgpipe.load_graph(kgpipe.artifact_path(PIPELINE, 'fuse.graph_graphml'))
degrees = pd.Series(dict(graph.degree()), name='degree')
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
degrees.value_counts().sort_index().plot(ax=left, marker='o', linestyle='', logx=True, logy=True)
left.set(xlabel='degree', ylabel='entities', title=f'{graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges')
hubs = degrees.nlargest(12)
right.barh([graph.nodes[n].get('label', n) for n in hubs.index][::-1], hubs.values[::-1])
right.set(title='best-connected entities', xlabel='degree')
plt.tight_layout()
print(f'{(degrees == 0).sum()} isolated entities (mentioned, but in no triple);',
      f'median degree {degrees.median():.0f}')"""),
    new_markdown_cell(
        "## The fusion report\n\n"
        "Which clusters of mentions were merged into one entity, and how much the graphs from the text and from "
        "each seed file overlap (shared nodes and edges, Jaccard and overlap coefficient)."),
    new_code_cell("""\
fusion = kgpipe.fusion_summary(PIPELINE)
print(fusion.report['entities'])
fusion.largest_merges"""),
    new_code_cell("""\
overlap = fusion.overlap.set_index(['graph_a', 'graph_b'])
ax = overlap[['nodes_jaccard', 'nodes_overlap_coefficient', 'edges_jaccard', 'edges_overlap_coefficient']].plot.barh(
    figsize=(8, 3))
ax.set(xlabel='similarity', ylabel='', title='overlap between source graphs')
overlap"""),
    new_code_cell("fusion.conflicts   # functional relations with more than one value"),
    new_markdown_cell("## The neighbourhood of one entity"),
    new_code_cell("""\
# the entity with the most different relations around it, then the most edges (set CENTER to look at another)
variety = pd.DataFrame({'relations': {n: len({k for *_, k in graph.out_edges(n, keys=True)}
                                         | {k for *_, k in graph.in_edges(n, keys=True)}) for n in graph},
                        'degree': degrees})
CENTER = variety.sort_values(['relations', 'degree'], ascending=False).index[0]
ego = kgpipe.ego_graph(graph, CENTER, radius=1, max_nodes=25)
types = sorted({local(t) for _, t in ego.nodes(data='type')})
palette = dict(zip(types, plt.cm.tab10.colors, strict=False))
pos = nx.spring_layout(ego, seed=0)
fig, ax = plt.subplots(figsize=(10, 7))
nx.draw_networkx_nodes(ego, pos, ax=ax, node_size=[900 if n == CENTER else 300 for n in ego],
                       node_color=[palette[local(ego.nodes[n].get('type'))] for n in ego])
nx.draw_networkx_edges(ego, pos, ax=ax, alpha=0.5, arrows=True, connectionstyle='arc3,rad=0.1')
nx.draw_networkx_labels(ego, pos, {n: ego.nodes[n].get('label', n) for n in ego}, ax=ax, font_size=8)
nx.draw_networkx_edge_labels(ego, pos, {(u, v): local(k) for u, v, k in ego.edges(keys=True)}, ax=ax, font_size=6)
ax.legend(handles=[plt.Line2D([], [], marker='o', linestyle='', color=c, label=t) for t, c in palette.items()],
          loc='lower left', fontsize=7)
ax.set_title(f"{graph.nodes[CENTER].get('label')} and its neighbours")
ax.set_axis_off()"""),
    new_markdown_cell(
        "## Provenance: from a triple back to its sentences\n\n"
        "`kgpipe.provenance` follows the ids: the fused triple, the extracted relations between mentions of its "
        "head and tail, those mentions, and the documents' sentences; seed files that also hold the triple are "
        "listed too."),
    new_code_cell("""\
# of the triples the text states, the one with most sources
text_triples = triples[stated]
triple = text_triples.sort_values(['count', 'head'], ascending=[False, True]).iloc[0]
label = entities.set_index('id')['label']
print(label[triple['head']], '--', local(triple['relation']), '->', label[triple['tail']],
      f"(sources: {', '.join(triple['sources'])})")
evidence = kgpipe.provenance(PIPELINE, triple)
evidence[['kind', 'source', 'document', 'subject', 'object', 'pattern_id', 'confidence']]"""),
    new_code_cell("""\
for row in evidence[evidence['kind'] == 'text'].itertuples():
    print(f'{row.document}: {row.sentence}')"""),
    new_code_cell("""\
# entities and relations can also be named by label and local name
kgpipe.provenance(PIPELINE, (label[triple['head']], local(triple['relation']), triple['tail']))[['kind', 'source']]"""),
]

EMBEDDINGS = [
    new_markdown_cell(
        "# Knowledge graph embeddings\n\n"
        "The embed stage trained a PyKEEN model on the fused graph. Here: the entity vectors in two dimensions "
        "(PCA) coloured by type, nearest neighbours, link prediction with the saved model, and the training "
        "curve. Only kgpipe's public API is used."),
    new_code_cell(setup(graph=False)),
    new_markdown_cell("## Entity vectors, projected to 2-D"),
    new_code_cell("""\
entities = kgpipe.load_artifact(PIPELINE, 'fuse.entities')
emb = kgpipe.load_embeddings(kgpipe.artifact_path(PIPELINE, 'embed.entity_embeddings'))
emb = emb.with_types(entities.set_index('id')['type'])
print(f'{len(emb)} entities with a {emb.dim}-dimensional vector',
      f'(of {len(entities)} fused entities: the others are in no triple)')"""),
    new_code_cell("""\
xy = emb.pca(2)
kinds = pd.Series([local(t) for t in emb.types])
shown = kinds.value_counts().index[:8]   # the eight commonest types, the rest grey
fig, ax = plt.subplots(figsize=(9, 7))
for kind, colour in zip(shown, plt.cm.tab10.colors, strict=False):
    ax.scatter(*xy[(kinds == kind).to_numpy()].T, s=14, color=colour, label=kind)
rest = (~kinds.isin(shown)).to_numpy()
ax.scatter(*xy[rest].T, s=8, color='lightgrey', label='other')
for i in pd.Series(xy[:, 0] ** 2 + xy[:, 1] ** 2).nlargest(12).index:   # label the outermost points
    ax.annotate(emb.labels[i], xy[i], fontsize=7)
ax.set(title='entity embeddings, first two principal components', xlabel='PC 1', ylabel='PC 2')
ax.legend(fontsize=8);"""),
    new_markdown_cell("## Nearest neighbours (cosine)"),
    new_code_cell("""\
mentioned = entities[entities['id'].isin(emb.ids)].nlargest(4, 'mention_count')
neighbours = {row.label: pd.DataFrame(emb.most_similar(row.id, k=5), columns=['id', 'label', 'cosine'])
              for row in mentioned.itertuples()}
pd.concat(neighbours, names=['query'])[['label', 'cosine']]"""),
    new_markdown_cell(
        "## Link prediction with the saved model\n\n"
        "`kgpipe.load_model` loads the trained PyKEEN model with its id maps; `predict_tails(head, relation, k)` "
        "scores every entity as the tail of (head, relation, ?). `in_training` marks triples the model saw."),
    new_code_cell("""\
model = kgpipe.load_model(PIPELINE)
triples = kgpipe.load_artifact(PIPELINE, 'fuse.triples')
known = triples[triples['head'].isin(emb.ids) & triples['tail'].isin(emb.ids)]
# the relation with most triples and, for it, the head with most tails
relation = known['relation'].value_counts().index[0]
head = known[known['relation'] == relation]['head'].value_counts().index[0]
head_label = emb.labels[emb.ids.index(head)]
true_tails = known[(known['head'] == head) & (known['relation'] == relation)]['tail']
print(f'({head_label}, {local(relation)}, ?)   true tails:',
      ', '.join(emb.labels[emb.ids.index(t)] for t in true_tails))
model.predict_tails(head_label, local(relation), k=10)"""),
    new_code_cell("""\
tail = known[known['relation'] == relation]['tail'].value_counts().index[0]
print(f'(?, {local(relation)}, {emb.labels[emb.ids.index(tail)]})')
model.predict_heads(local(relation), tail, k=10, exclude_known=True)   # only triples the graph does not hold yet"""),
    new_markdown_cell("## Training curve"),
    new_code_cell("""\
history = kgpipe.training_history(PIPELINE)
metric = history.columns[-1]
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(history['epoch'], history['loss'], color='tab:blue')
ax.set(xlabel='epoch', ylabel='training loss')
validated = history.dropna(subset=[metric])
twin = ax.twinx()
twin.plot(validated['epoch'], validated[metric], color='tab:orange', marker='o')
twin.set_ylabel(metric.replace('_', ' '), color='tab:orange')
metrics = kgpipe.load_artifact(PIPELINE, 'embed.metrics')
pd.Series({k: v for k, v in metrics['test'].items() if isinstance(v, float)}, name='test').round(4).to_frame()"""),
]

KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def build(folder: Path = HERE) -> list[Path]:
    """Write the notebooks into folder; returns their paths."""
    written = []
    for name, cells in (("01_inspect_graph.ipynb", INSPECT_GRAPH), ("02_embeddings.ipynb", EMBEDDINGS)):
        notebook = new_notebook(cells=cells, metadata=KERNEL)
        for i, cell in enumerate(notebook.cells):  # stable ids: rebuilding gives the same file
            cell["id"] = f"{name[:2]}-{i:02d}"
        nbformat.validate(notebook)
        path = folder / name
        nbformat.write(notebook, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(path)
