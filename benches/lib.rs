//! Benchmarks for HoneySens live in this package's `[[bench]]` targets (`store_ingest`,
//! `store_query`); see `docs/benchmarks.md` for how to run them and what each row
//! measures.
