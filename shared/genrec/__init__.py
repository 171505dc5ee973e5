"""genrec: event-driven generative recommender platform."""
__version__ = "0.1.0"
