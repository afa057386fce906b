//! Per-sphere gradient buffers, parallel fixed-order reduction, norm, clipping, NaN/Inf checks.
