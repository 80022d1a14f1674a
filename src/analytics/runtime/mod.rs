//! Running queries: the engine (`engine`) over records read from a stream's shards
//! (`reader`), as a continuous application with exactly-once commits (`app`, `checkpoint`).

pub mod app;
pub mod checkpoint;
pub mod engine;
pub mod lookup;
pub mod reader;
