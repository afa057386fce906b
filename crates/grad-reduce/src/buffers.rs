//! [`GradBuffers`]: per-sphere gradient buffers owned by Rust code.

/// One set of gradient buffers per sphere, all with the same layout (the
/// lengths of a model's gradient arrays), zero-initialised.
///
/// A host that owns its gradients (the C host's replicas) passes them to
/// [`GradReducer::reduce`](crate::GradReducer::reduce) directly; this type is
/// for Rust code and benchmarks that need the buffers made for them.
#[derive(Debug, Clone)]
pub struct GradBuffers {
    lens: Vec<usize>,
    spheres: Vec<Vec<Vec<f32>>>,
}

impl GradBuffers {
    /// `spheres` sets of zeroed buffers of lengths `lens`.
    pub fn new(spheres: usize, lens: &[usize]) -> Self {
        let spheres = (0..spheres)
            .map(|_| lens.iter().map(|&len| vec![0.0; len]).collect())
            .collect();
        Self {
            lens: lens.to_vec(),
            spheres,
        }
    }

    /// The number of spheres (sets of buffers).
    pub fn spheres(&self) -> usize {
        self.spheres.len()
    }

    /// The buffer lengths.
    pub fn buffer_lens(&self) -> &[usize] {
        &self.lens
    }

    /// Sphere `i`'s buffers. Panics if `i` is out of range.
    pub fn sphere_mut(&mut self, i: usize) -> &mut [Vec<f32>] {
        &mut self.spheres[i]
    }

    /// Every sphere's buffers, for filling them from several threads at once
    /// (each thread takes its own element).
    pub fn per_sphere_mut(&mut self) -> impl Iterator<Item = &mut [Vec<f32>]> {
        self.spheres.iter_mut().map(|s| s.as_mut_slice())
    }

    /// The buffers as reduction sources: `sources()[i][b]` is sphere `i`'s
    /// buffer `b`.
    pub fn sources(&self) -> Vec<Vec<&[f32]>> {
        self.spheres
            .iter()
            .map(|s| s.iter().map(|b| b.as_slice()).collect())
            .collect()
    }

    /// Sets every value to 0.0.
    pub fn zero(&mut self) {
        self.spheres.iter_mut().flatten().for_each(|b| b.fill(0.0));
    }
}
