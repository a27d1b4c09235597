"""Exports for downstream tools: embeddings in the formats models and viewers read, graphs for graph tools."""
