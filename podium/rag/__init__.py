"""Knowledge collections: documents, chunking, the vector index (sqlite-vec / pgvector), hybrid
retrieval (docs/rag.md)."""
