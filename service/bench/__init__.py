"""The benchmark room: one module per docs/benchmarks.md section, driven by `astroloc bench ...`.

report (the document writer), model, starid, index, localize, ingest, train. Each module's ``run``
returns the section's markdown; the CLI only parses options, calls it and writes the section.
"""
