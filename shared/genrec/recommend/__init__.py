"""Serving recommendations: the model path, its fallbacks, filters, pages and reasons."""
