"""The satellite-tile database (pure): XYZ tile math, tile sources, sharded FAISS index build and search, file helpers."""
