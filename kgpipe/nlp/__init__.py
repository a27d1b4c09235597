"""The extract stage's NLP: spaCy model loading, the seed-KG gazetteer, relation patterns (hand-written
and learned), long-document splitting, NER training and the extractor that ties them together.

Every module imports spaCy lazily or is only imported by code that already needs it.
"""
