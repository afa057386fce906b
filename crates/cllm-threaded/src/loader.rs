//! (C API of this area: not written yet.)
