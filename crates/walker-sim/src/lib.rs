//! Deterministic stand-in for the walker training loop: benchmark and demo of the runtime.
