"""mathrecipes: "more data or better data?" for math-reasoning language models, as a workflow."""

__version__ = "0.1.0"
