"""Package data of geo/: ``iss_sample.tle``, seven real ISS (NORAD 25544) element sets, 2008-2019.

They were typed from public sources (the Wikipedia TLE article, the sgp4 and skyfield documentation
and test suites) and place the demo world's simulated cameras on real ISS orbits.
"""
