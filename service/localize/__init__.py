"""Localization, in one home: POST /localize's synchronous part and its refinement job.

- :mod:`service.localize.contracts`: the typed job contract (params, candidates, result);
- :mod:`service.localize.submit`: the request: checks, search region, retrieval, photo stored, job queued;
- :mod:`service.localize.region`: where to search (ISS visibility region, or worldwide and why);
- :mod:`service.localize.retrieval`: the active model + the tile index, loaded once per process;
- :mod:`service.localize.refine`: EarthMatch over the candidates (RefineParams from the settings);
- :mod:`service.localize.result`: the job's answer, its footprint stored through crud.

Nothing is imported here, so that ``service.localize.region`` does not load torch or FAISS.
"""
