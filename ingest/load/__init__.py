"""Load one file into a :class:`~ingest.document.ParsedDocument`.

:mod:`ingest.load.loader` holds :class:`~ingest.load.loader.DocumentLoader` and the
dispatch by extension; :mod:`~ingest.load.text` reads plain text and CSV,
:mod:`~ingest.load.pdf` PDFs (with OCR), :mod:`~ingest.load.partitioners` the other
formats through ``unstructured``, which :mod:`~ingest.load.unstructured_shims` prepares
for offline use. Import from those modules; this package stays empty so that importing one
of them does not import the rest.
"""
