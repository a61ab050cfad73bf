"""Views of records for people: terminal and Markdown tables, listings, conformance reports,
sweep summaries, and figures (a drawing-free figure model, then matplotlib)."""
