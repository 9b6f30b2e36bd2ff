"""Built-in, offline data: procedural problem generators with ground truth by construction."""
