"""Offline index building and loading (passages -> FAISS, triples -> knowledge graph)."""
