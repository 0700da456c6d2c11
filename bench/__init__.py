"""Benchmarks and the sample company generator: apart from the product code, used by `dunning bench`, `demo` and `generate`."""
