"""The static report: reading both stores, the pages, the figures, the HTML."""
