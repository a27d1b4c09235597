"""Language-model side of kgpipe: sub-word alignment, knowledge tables, KG-to-LM maps and the
knowledge-enhanced encoder."""
