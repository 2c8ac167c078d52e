"""Bridges from archzoo's recipes to other toolkits (Keras 3 on the torch backend: :mod:`.keras3`).

Each bridge reuses archzoo's own builders for data and models, so the other toolkit trains the
same architecture on the same in-memory arrays.
"""
