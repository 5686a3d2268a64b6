"""Text rules shared by every stage: tokens for BM25 and the one language rule."""
