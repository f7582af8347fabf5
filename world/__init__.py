"""The demo world (pure: no FastAPI, RQ or SQL): Blue Marble tiles and simulated ISS photos with ground truth.

- :mod:`world.bluemarble`: the Earth's texture (NASA Blue Marble), land/sea mask, tile renderer;
- :mod:`world.camera`: the simulated camera in orbit, ray-cast onto the WGS84 ellipsoid;
- :mod:`world.photosim`: the nuisances that make a rendering an astronaut photo;
- :mod:`world.view`: one photo: its view, footprint, rendering (:func:`~world.view.render_view`);
- :mod:`world.sampling`: views drawn on real ISS orbits (:func:`~world.sampling.sample_view`);
- :mod:`world.split`: the train / val / test split by geography;
- :mod:`world.catalogue`: a built world's files and queries.csv, its one reader
  (:func:`~world.catalogue.read_photos`);
- :mod:`world.build`: everything, cached and resumable (:func:`~world.build.build_world`);
- :mod:`world.figure`: the figure of docs/world.md.

World may import geo and index; geo and index never import world.
"""
