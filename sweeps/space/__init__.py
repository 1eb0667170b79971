"""The search-space file: its format (pydantic), loading it, and asking a trial for its params."""
