//! Reads every corpus file once, tokenises in parallel, caches, batches and shards to spheres.
