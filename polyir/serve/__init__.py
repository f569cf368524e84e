"""An HTTP search service (FastAPI) over a polyir index, with a small built-in web page."""
