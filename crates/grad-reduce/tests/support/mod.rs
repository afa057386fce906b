//! The plain sequential references the integration tests compare against.

/// The plain sequential reference: element by element, sources in order.
pub fn reference_sum(sources: &[Vec<Vec<f32>>], weights: &[f32]) -> Vec<Vec<f32>> {
    let lens: Vec<usize> = sources[0].iter().map(Vec::len).collect();
    lens.iter()
        .enumerate()
        .map(|(b, &len)| {
            (0..len)
                .map(|k| {
                    let mut acc = weights[0] * sources[0][b][k];
                    for (source, &w) in sources[1..].iter().zip(&weights[1..]) {
                        acc += w * source[b][k];
                    }
                    acc
                })
                .collect()
        })
        .collect()
}

/// The reference norm in the documented order: pieces of `chunk` per
/// buffer, 8 lanes per piece combined pairwise, pieces summed in order.
pub fn reference_norm(buffers: &[Vec<f32>], chunk: usize) -> f64 {
    let mut total = 0.0f64;
    for buffer in buffers {
        for piece in buffer.chunks(chunk) {
            let mut lanes = [0.0f64; 8];
            for (k, &v) in piece.iter().enumerate() {
                lanes[k % 8] += f64::from(v) * f64::from(v);
            }
            total += ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        }
    }
    total.sqrt()
}
