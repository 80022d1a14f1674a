//! Running queries: the engine (`engine`) over records read from a stream's shards
//! (`reader`), per input table (`input`: decoding and watermarks), as a continuous application with exactly-once commits (`app`, `checkpoint`).

pub mod app;
pub mod checkpoint;
pub mod engine;
mod input;
pub mod lookup;
pub mod reader;
mod sink;
