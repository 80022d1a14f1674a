//! Ways records come in besides the HTTP API: MQTT from sensors.

pub mod mqtt;
