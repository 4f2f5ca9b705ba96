//! Benchmarks for HoneySens live in this package's `[[bench]]` targets; see
//! `docs/benchmarks.md` for how to run them and the latest results.
