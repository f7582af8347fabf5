"""Service logic between the entry points (api/, cli/, worker/) and the pure packages: settings, storage (all SQL in crud), jobs, localization, training, indexing, benchmarks."""
