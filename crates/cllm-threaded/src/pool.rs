//! C API of sphere pools.
