"""Figures of results: what to draw (:mod:`.build`, :mod:`.model`), exact curves, captions;
:mod:`gradbench.report.plot` draws it."""
