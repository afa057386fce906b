//! The agents' policy network: the exact layer shapes of `walker.md`, a real
//! batched forward pass, the exact analytic backward pass, gradient clipping
//! and Adam.
//!
//! Shapes (A = the body's action count, 25 to 91):
//! - encoder: 29 -> 128 -> 128 -> 128, each linear followed by a layer norm
//!   (gain and bias) and a ReLU;
//! - "attention": four 128x128 projections (query, key, value, output) over a
//!   sequence of length 1, with a residual connection. The softmax over one
//!   score is computed (it is exactly 1), so the context is the value;
//! - feed-forward 128 -> 128 (ReLU) -> 128, with a residual connection;
//! - dueling heads: value 128 -> 64 (ReLU) -> 1 and advantage
//!   128 -> 64 (ReLU) -> A; `Q = value + advantage - mean(advantage)`.
//!
//! Parameters: 154 906 for A = 25 up to 159 196 for A = 91, in one flat
//! `f32` vector (weights row-major `[out][in]`, then biases), so that Adam,
//! clipping, the target copy and the world hash run over one slice.
//!
//! [`backward`] is the exact gradient of the loss with respect to every
//! parameter, layer norms included (checked against finite differences in
//! the tests). Through the length-1 attention the softmax's gradient is
//! exactly zero, so the query and key projections receive zero gradients;
//! they are still computed, as an autograd framework would, so the backward
//! pass costs what it costs in the original: a weight gradient and an input
//! gradient for every linear layer except the first's input, about
//! 2 x batch x parameters multiply-adds.
//!
//! Every reduction has a fixed order (eight accumulators, combined in a fixed
//! tree) and no `mul_add` is used, so results are the same bits on every
//! thread and with any vector width.

/// Inputs of the network: the agent's state.
pub const INPUTS: usize = 29;
/// Width of the encoder, attention and feed-forward layers.
pub const HIDDEN: usize = 128;
/// Width of the two heads' hidden layers.
pub const HEAD_HIDDEN: usize = 64;
/// The largest action count of any body.
pub const MAX_ACTIONS: usize = 91;
/// Samples in a training batch.
pub const BATCH: usize = 32;

const LN_EPS: f32 = 1e-5;
/// 1 / sqrt(HIDDEN): the attention score scale.
const SCORE_SCALE: f32 = 0.088_388_35;

/// A linear layer's place in the flat parameter vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Linear {
    input: usize,
    output: usize,
    /// Offset of the `[output][input]` weights.
    w: usize,
    /// Offset of the `output` biases.
    b: usize,
}

/// A layer norm's gain and bias offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Norm {
    gamma: usize,
    beta: usize,
}

/// Where every layer's parameters are in the flat vector of a network with
/// `actions` outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    actions: usize,
    enc: [Linear; 3],
    norm: [Norm; 3],
    /// Query, key, value, output projections.
    attn: [Linear; 4],
    ff: [Linear; 2],
    value: [Linear; 2],
    adv: [Linear; 2],
    len: usize,
}

impl Layout {
    /// The layout of a network with `actions` outputs (1..=`MAX_ACTIONS`).
    pub fn new(actions: usize) -> Self {
        assert!((1..=MAX_ACTIONS).contains(&actions), "{actions} actions");
        let mut next = 0;
        let mut linear = |input: usize, output: usize| {
            let l = Linear {
                input,
                output,
                w: next,
                b: next + input * output,
            };
            next += input * output + output;
            l
        };
        let e0 = linear(INPUTS, HIDDEN);
        let e1 = linear(HIDDEN, HIDDEN);
        let e2 = linear(HIDDEN, HIDDEN);
        let attn = [
            linear(HIDDEN, HIDDEN),
            linear(HIDDEN, HIDDEN),
            linear(HIDDEN, HIDDEN),
            linear(HIDDEN, HIDDEN),
        ];
        let ff = [linear(HIDDEN, HIDDEN), linear(HIDDEN, HIDDEN)];
        let value = [linear(HIDDEN, HEAD_HIDDEN), linear(HEAD_HIDDEN, 1)];
        let adv = [linear(HIDDEN, HEAD_HIDDEN), linear(HEAD_HIDDEN, actions)];
        let norm = std::array::from_fn(|_| {
            let n = Norm {
                gamma: next,
                beta: next + HIDDEN,
            };
            next += 2 * HIDDEN;
            n
        });
        Self {
            actions,
            enc: [e0, e1, e2],
            norm,
            attn,
            ff,
            value,
            adv,
            len: next,
        }
    }

    /// The action count (the advantage head's width).
    pub fn actions(&self) -> usize {
        self.actions
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a network has parameters.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn linears(&self) -> impl Iterator<Item = Linear> + '_ {
        self.enc
            .iter()
            .chain(&self.attn)
            .chain(&self.ff)
            .chain(&self.value)
            .chain(&self.adv)
            .copied()
    }

    /// Multiply-adds of one forward pass of one sample.
    pub fn forward_macs(&self) -> usize {
        self.linears().map(|l| l.input * l.output).sum()
    }

    /// Fresh parameters: uniform weights scaled by fan-in and fan-out, zero
    /// biases, unit layer-norm gains.
    pub fn init(&self, rng: &mut crate::rng::Rng) -> Vec<f32> {
        let mut p = vec![0.0f32; self.len];
        for l in self.linears() {
            let limit = (6.0 / (l.input + l.output) as f32).sqrt();
            for w in &mut p[l.w..l.w + l.input * l.output] {
                *w = rng.signed() * limit;
            }
        }
        for n in &self.norm {
            p[n.gamma..n.gamma + HIDDEN].fill(1.0);
        }
        p
    }
}

/// `a . b` with eight accumulators combined in a fixed order: vectorises,
/// and gives the same bits whatever the vector width.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y += a * x`.
#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    debug_assert_eq!(y.len(), x.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `y[s] = W x[s] + b` for every sample `s` of the batch.
fn linear_forward(p: &[f32], l: Linear, x: &[f32], y: &mut [f32], batch: usize) {
    let w = &p[l.w..l.w + l.input * l.output];
    let b = &p[l.b..l.b + l.output];
    for (o, row) in w.chunks_exact(l.input).enumerate() {
        for s in 0..batch {
            y[s * l.output + o] = dot(row, &x[s * l.input..(s + 1) * l.input]) + b[o];
        }
    }
}

/// Adds the weight and bias gradients of `l` for output gradients `dy` and
/// inputs `x` to `g`; if `dx` is given, writes (or with `accumulate`, adds)
/// the input gradients there.
#[allow(clippy::too_many_arguments)]
fn linear_backward(
    p: &[f32],
    g: &mut [f32],
    l: Linear,
    x: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    accumulate: bool,
    batch: usize,
) {
    let (input, output) = (l.input, l.output);
    {
        let (gw, gb) = g[l.w..l.b + output].split_at_mut(input * output);
        for (o, grow) in gw.chunks_exact_mut(input).enumerate() {
            let mut bias = 0.0f32;
            for s in 0..batch {
                let d = dy[s * output + o];
                axpy(grow, d, &x[s * input..(s + 1) * input]);
                bias += d;
            }
            gb[o] += bias;
        }
    }
    if let Some(dx) = dx {
        let dx = &mut dx[..batch * input];
        if !accumulate {
            dx.fill(0.0);
        }
        let w = &p[l.w..l.w + input * output];
        for (o, row) in w.chunks_exact(input).enumerate() {
            for s in 0..batch {
                axpy(&mut dx[s * input..(s + 1) * input], dy[s * output + o], row);
            }
        }
    }
}

/// A head of the dueling network: `out = W1 relu(W0 r)`, `hidden` keeping
/// `relu(W0 r)` for the backward pass.
fn head_forward(
    p: &[f32],
    head: [Linear; 2],
    r: &[f32],
    hidden: &mut [f32],
    out: &mut [f32],
    batch: usize,
) {
    linear_forward(p, head[0], r, hidden, batch);
    relu(&mut hidden[..batch * HEAD_HIDDEN]);
    linear_forward(p, head[1], hidden, out, batch);
}

/// The backward pass of [`head_forward`] for output gradients `dout`: adds
/// the head's weight gradients to `g` and writes (or, with `accumulate`,
/// adds) the gradient of `r` to `dr`; `dhead` is scratch.
#[allow(clippy::too_many_arguments)]
fn head_backward(
    p: &[f32],
    g: &mut [f32],
    head: [Linear; 2],
    r: &[f32],
    hidden: &[f32],
    dout: &[f32],
    dhead: &mut [f32],
    dr: &mut [f32],
    accumulate: bool,
    batch: usize,
) {
    linear_backward(p, g, head[1], hidden, dout, Some(dhead), false, batch);
    relu_backward(
        &mut dhead[..batch * HEAD_HIDDEN],
        &hidden[..batch * HEAD_HIDDEN],
    );
    linear_backward(p, g, head[0], r, dhead, Some(dr), accumulate, batch);
}

/// In place: `exp(x - max) / sum`.
fn softmax(scores: &mut [f32]) {
    let max = scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0.0f32;
    for x in scores.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in scores.iter_mut() {
        *x /= sum;
    }
}

fn relu(v: &mut [f32]) {
    for x in v {
        *x = x.max(0.0);
    }
}

/// Zeroes `d` where the ReLU's output `h` was zero.
fn relu_backward(d: &mut [f32], h: &[f32]) {
    for (di, hi) in d.iter_mut().zip(h) {
        if *hi <= 0.0 {
            *di = 0.0;
        }
    }
}

/// Layer norm then ReLU, in place on `e` -> `h`, keeping `xhat` and the
/// inverse standard deviation for the backward pass.
fn norm_forward(
    p: &[f32],
    n: Norm,
    e: &[f32],
    xhat: &mut [f32],
    inv_std: &mut [f32],
    h: &mut [f32],
    batch: usize,
) {
    let gamma = &p[n.gamma..n.gamma + HIDDEN];
    let beta = &p[n.beta..n.beta + HIDDEN];
    for (s, inv_s) in inv_std.iter_mut().enumerate().take(batch) {
        let row = &e[s * HIDDEN..(s + 1) * HIDDEN];
        let mean = row.iter().sum::<f32>() / HIDDEN as f32;
        let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / HIDDEN as f32;
        let inv = 1.0 / (var + LN_EPS).sqrt();
        *inv_s = inv;
        let xr = &mut xhat[s * HIDDEN..(s + 1) * HIDDEN];
        let hr = &mut h[s * HIDDEN..(s + 1) * HIDDEN];
        for i in 0..HIDDEN {
            xr[i] = (row[i] - mean) * inv;
            hr[i] = (gamma[i] * xr[i] + beta[i]).max(0.0);
        }
    }
}

/// From the gradient `dh` at the ReLU's output to the gradient at the layer
/// norm's input (written to `de`), adding the gain and bias gradients to `g`.
#[allow(clippy::too_many_arguments)]
fn norm_backward(
    p: &[f32],
    g: &mut [f32],
    n: Norm,
    xhat: &[f32],
    inv_std: &[f32],
    h: &[f32],
    dh: &[f32],
    de: &mut [f32],
    batch: usize,
) {
    let gamma = &p[n.gamma..n.gamma + HIDDEN];
    for (s, &inv) in inv_std.iter().enumerate().take(batch) {
        let range = s * HIDDEN..(s + 1) * HIDDEN;
        let (xr, hr, dr) = (&xhat[range.clone()], &h[range.clone()], &dh[range.clone()]);
        let der = &mut de[range];
        let mut dxhat = [0.0f32; HIDDEN];
        for i in 0..HIDDEN {
            let dn = if hr[i] > 0.0 { dr[i] } else { 0.0 };
            g[n.gamma + i] += dn * xr[i];
            g[n.beta + i] += dn;
            dxhat[i] = dn * gamma[i];
        }
        let mean_d = dxhat.iter().sum::<f32>() / HIDDEN as f32;
        let mean_dx = dot(&dxhat, xr) / HIDDEN as f32;
        for i in 0..HIDDEN {
            der[i] = inv * (dxhat[i] - mean_d - xr[i] * mean_dx);
        }
    }
}

/// Everything a forward pass computes, kept for the backward pass. Sized
/// for up to [`BATCH`] samples.
#[derive(Clone)]
pub struct Activations {
    batch: usize,
    x: Vec<f32>,
    e: [Vec<f32>; 3],
    xhat: [Vec<f32>; 3],
    inv_std: [Vec<f32>; 3],
    h: [Vec<f32>; 3],
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    p: Vec<f32>,
    ctx: Vec<f32>,
    o: Vec<f32>,
    a: Vec<f32>,
    f1: Vec<f32>,
    f2: Vec<f32>,
    r: Vec<f32>,
    vh: Vec<f32>,
    val: Vec<f32>,
    ah: Vec<f32>,
    adv: Vec<f32>,
    qv: Vec<f32>,
}

impl Default for Activations {
    fn default() -> Self {
        Self::new()
    }
}

impl Activations {
    /// Buffers for up to [`BATCH`] samples.
    pub fn new() -> Self {
        let hidden = || vec![0.0f32; BATCH * HIDDEN];
        let per_sample = || vec![0.0f32; BATCH];
        Self {
            batch: 0,
            x: vec![0.0; BATCH * INPUTS],
            e: std::array::from_fn(|_| hidden()),
            xhat: std::array::from_fn(|_| hidden()),
            inv_std: std::array::from_fn(|_| per_sample()),
            h: std::array::from_fn(|_| hidden()),
            q: hidden(),
            k: hidden(),
            v: hidden(),
            p: per_sample(),
            ctx: hidden(),
            o: hidden(),
            a: hidden(),
            f1: hidden(),
            f2: hidden(),
            r: hidden(),
            vh: vec![0.0; BATCH * HEAD_HIDDEN],
            val: per_sample(),
            ah: vec![0.0; BATCH * HEAD_HIDDEN],
            adv: vec![0.0; BATCH * MAX_ACTIONS],
            qv: vec![0.0; BATCH * MAX_ACTIONS],
        }
    }

    /// The Q values of sample `s` of the last forward pass.
    pub fn q_values(&self, actions: usize, s: usize) -> &[f32] {
        &self.qv[s * actions..(s + 1) * actions]
    }
}

/// Runs the network on `batch` states (`x`: `batch` rows of [`INPUTS`]),
/// keeping every intermediate in `act`. The Q values are in
/// [`Activations::q_values`].
pub fn forward(params: &[f32], layout: &Layout, x: &[f32], batch: usize, act: &mut Activations) {
    assert!((1..=BATCH).contains(&batch) && x.len() >= batch * INPUTS);
    let p = params;
    act.batch = batch;
    act.x[..batch * INPUTS].copy_from_slice(&x[..batch * INPUTS]);
    for i in 0..3 {
        let input: &[f32] = if i == 0 { &act.x } else { &act.h[i - 1] };
        linear_forward(p, layout.enc[i], input, &mut act.e[i], batch);
        norm_forward(
            p,
            layout.norm[i],
            &act.e[i],
            &mut act.xhat[i],
            &mut act.inv_std[i],
            &mut act.h[i],
            batch,
        );
    }
    let h3 = &act.h[2];
    linear_forward(p, layout.attn[0], h3, &mut act.q, batch);
    linear_forward(p, layout.attn[1], h3, &mut act.k, batch);
    linear_forward(p, layout.attn[2], h3, &mut act.v, batch);
    for s in 0..batch {
        let range = s * HIDDEN..(s + 1) * HIDDEN;
        // Softmax over a sequence of one key (its weight is exactly 1).
        let mut scores = [dot(&act.q[range.clone()], &act.k[range.clone()]) * SCORE_SCALE];
        softmax(&mut scores);
        act.p[s] = scores[0];
        let ps = act.p[s];
        for i in range {
            act.ctx[i] = ps * act.v[i];
        }
    }
    linear_forward(p, layout.attn[3], &act.ctx, &mut act.o, batch);
    for i in 0..batch * HIDDEN {
        act.a[i] = act.h[2][i] + act.o[i];
    }
    linear_forward(p, layout.ff[0], &act.a, &mut act.f1, batch);
    relu(&mut act.f1[..batch * HIDDEN]);
    linear_forward(p, layout.ff[1], &act.f1, &mut act.f2, batch);
    for i in 0..batch * HIDDEN {
        act.r[i] = act.a[i] + act.f2[i];
    }
    head_forward(p, layout.value, &act.r, &mut act.vh, &mut act.val, batch);
    head_forward(p, layout.adv, &act.r, &mut act.ah, &mut act.adv, batch);
    let actions = layout.actions;
    for s in 0..batch {
        let adv = &act.adv[s * actions..(s + 1) * actions];
        let mean = adv.iter().sum::<f32>() / actions as f32;
        let val = act.val[s];
        for (q, a) in act.qv[s * actions..(s + 1) * actions].iter_mut().zip(adv) {
            *q = val + a - mean;
        }
    }
}

/// Scratch buffers of the backward pass.
#[derive(Clone)]
pub struct BackwardScratch {
    dval: Vec<f32>,
    dadv: Vec<f32>,
    dhead: Vec<f32>,
    dr: Vec<f32>,
    dt: Vec<f32>,
    df: Vec<f32>,
    da: Vec<f32>,
    dctx: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    dh: Vec<f32>,
    de: Vec<f32>,
}

impl Default for BackwardScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl BackwardScratch {
    /// Buffers for up to [`BATCH`] samples.
    pub fn new() -> Self {
        let hidden = || vec![0.0f32; BATCH * HIDDEN];
        Self {
            dval: vec![0.0; BATCH],
            dadv: vec![0.0; BATCH * MAX_ACTIONS],
            dhead: vec![0.0; BATCH * HEAD_HIDDEN],
            dr: hidden(),
            dt: hidden(),
            df: hidden(),
            da: hidden(),
            dctx: hidden(),
            dq: hidden(),
            dk: hidden(),
            dv: hidden(),
            dh: hidden(),
            de: hidden(),
        }
    }
}

/// Adds to `grad` the gradient of a loss whose gradient with respect to the
/// Q values of the forward pass in `act` is `dq` (`batch` rows of
/// `actions`). Exact, see the module docs.
pub fn backward(
    params: &[f32],
    layout: &Layout,
    act: &Activations,
    dq: &[f32],
    grad: &mut [f32],
    sc: &mut BackwardScratch,
) {
    let p = params;
    let batch = act.batch;
    let actions = layout.actions;
    let hb = batch * HIDDEN;
    // Dueling combination.
    for s in 0..batch {
        let row = &dq[s * actions..(s + 1) * actions];
        let total = row.iter().sum::<f32>();
        sc.dval[s] = total;
        for (d, r) in sc.dadv[s * actions..(s + 1) * actions].iter_mut().zip(row) {
            *d = r - total / actions as f32;
        }
    }
    // Both heads read r: the advantage head adds its gradient to the value
    // head's.
    let heads = [
        (layout.value, &act.vh, &sc.dval, false),
        (layout.adv, &act.ah, &sc.dadv, true),
    ];
    for (head, hidden, dout, accumulate) in heads {
        let (dhead, dr) = (&mut sc.dhead, &mut sc.dr);
        head_backward(
            p, grad, head, &act.r, hidden, dout, dhead, dr, accumulate, batch,
        );
    }
    // r = a + ff(a): the gradient reaches a directly and through ff.
    sc.da[..hb].copy_from_slice(&sc.dr[..hb]);
    linear_backward(
        p,
        grad,
        layout.ff[1],
        &act.f1,
        &sc.dr,
        Some(&mut sc.df),
        false,
        batch,
    );
    relu_backward(&mut sc.df[..hb], &act.f1[..hb]);
    linear_backward(
        p,
        grad,
        layout.ff[0],
        &act.a,
        &sc.df,
        Some(&mut sc.da),
        true,
        batch,
    );
    // a = h3 + O(ctx): dh3 = da, and through the output projection.
    sc.dh[..hb].copy_from_slice(&sc.da[..hb]);
    linear_backward(
        p,
        grad,
        layout.attn[3],
        &act.ctx,
        &sc.da,
        Some(&mut sc.dctx),
        false,
        batch,
    );
    // ctx = p v; p = softmax of one score, whose gradient is
    // p (dp - p dp) = 0: computed as a framework would.
    for s in 0..batch {
        let range = s * HIDDEN..(s + 1) * HIDDEN;
        let ps = act.p[s];
        let dp = dot(&sc.dctx[range.clone()], &act.v[range.clone()]);
        let dscore = ps * (dp - ps * dp) * SCORE_SCALE;
        for i in range {
            sc.dv[i] = ps * sc.dctx[i];
            sc.dq[i] = dscore * act.k[i];
            sc.dk[i] = dscore * act.q[i];
        }
    }
    let h3 = &act.h[2];
    for (l, d) in [
        (layout.attn[0], &sc.dq),
        (layout.attn[1], &sc.dk),
        (layout.attn[2], &sc.dv),
    ] {
        linear_backward(p, grad, l, h3, d, Some(&mut sc.dh), true, batch);
    }
    // Encoder, top down.
    for i in (0..3).rev() {
        norm_backward(
            p,
            grad,
            layout.norm[i],
            &act.xhat[i],
            &act.inv_std[i],
            &act.h[i],
            &sc.dh,
            &mut sc.de,
            batch,
        );
        if i > 0 {
            linear_backward(
                p,
                grad,
                layout.enc[i],
                &act.h[i - 1],
                &sc.de,
                Some(&mut sc.dt),
                false,
                batch,
            );
            std::mem::swap(&mut sc.dh, &mut sc.dt);
        } else {
            // The input needs no gradient.
            linear_backward(p, grad, layout.enc[0], &act.x, &sc.de, None, false, batch);
        }
    }
}

/// The factor that brings `grad`'s L2 norm to at most `max_norm` (1 if it
/// already is), and the norm. Clipping is applied by multiplying each
/// gradient by the factor ([`clip_grad_norm`], or fused into
/// [`Adam::step_scaled`], which saves a pass over the gradient).
pub fn clip_factor(grad: &[f32], max_norm: f32) -> (f32, f32) {
    let norm = dot(grad, grad).sqrt();
    let scale = if norm > max_norm {
        max_norm / norm
    } else {
        1.0
    };
    (scale, norm)
}

/// Scales `grad` so that its L2 norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grad: &mut [f32], max_norm: f32) -> f32 {
    let (scale, norm) = clip_factor(grad, max_norm);
    if scale != 1.0 {
        for g in grad.iter_mut() {
            *g *= scale;
        }
    }
    norm
}

/// Adam's moment estimates and step count for one network.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Steps taken.
    pub steps: u64,
    beta1_pow: f32,
    beta2_pow: f32,
}

/// Adam's hyper-parameters (the common defaults, learning rate 1e-4).
pub const ADAM_LR: f32 = 1e-4;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

impl Adam {
    /// Zero moments for `len` parameters.
    pub fn new(len: usize) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
            steps: 0,
            beta1_pow: 1.0,
            beta2_pow: 1.0,
        }
    }

    /// Back to zero moments (a respawned agent).
    pub fn reset(&mut self) {
        self.m.fill(0.0);
        self.v.fill(0.0);
        self.steps = 0;
        self.beta1_pow = 1.0;
        self.beta2_pow = 1.0;
    }

    /// One Adam step of `params` along `grad`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f32) {
        self.step_scaled(params, grad, 1.0, lr);
    }

    /// One Adam step along `grad * scale` (the same bits as scaling the
    /// gradient first, without writing it back).
    pub fn step_scaled(&mut self, params: &mut [f32], grad: &[f32], scale: f32, lr: f32) {
        self.steps += 1;
        // Running powers instead of powi: the same bits on every platform.
        self.beta1_pow *= BETA1;
        self.beta2_pow *= BETA2;
        let c1 = 1.0 / (1.0 - self.beta1_pow);
        let c2 = 1.0 / (1.0 - self.beta2_pow);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            let g = if scale == 1.0 { *g } else { *g * scale };
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= lr * (*m * c1) / ((*v * c2).sqrt() + ADAM_EPS);
        }
    }

    /// The two running powers, for hashing.
    pub fn powers(&self) -> (f32, f32) {
        (self.beta1_pow, self.beta2_pow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn parameter_counts_match_the_shapes_of_walker_md() {
        assert_eq!(Layout::new(25).len(), 154_906);
        assert_eq!(Layout::new(91).len(), 159_196);
        // About 150k multiply-adds per forward pass.
        let macs = Layout::new(25).forward_macs();
        assert!((150_000..160_000).contains(&macs), "{macs}");
    }

    fn loss(params: &[f32], layout: &Layout, x: &[f32], batch: usize, w: &[f32]) -> f64 {
        let mut act = Activations::new();
        forward(params, layout, x, batch, &mut act);
        act.qv[..batch * layout.actions]
            .iter()
            .zip(w)
            .map(|(q, w)| f64::from(*q) * f64::from(*w))
            .sum()
    }

    #[test]
    fn backward_matches_finite_differences_in_every_layer() {
        let layout = Layout::new(25);
        let mut rng = Rng::new(3, 0);
        let mut params = layout.init(&mut rng);
        // Non-trivial layer-norm gains and biases.
        for n in &layout.norm {
            for i in 0..HIDDEN {
                params[n.gamma + i] = 1.0 + 0.3 * rng.signed();
                params[n.beta + i] = 0.2 * rng.signed();
            }
        }
        let batch = 3;
        let x: Vec<f32> = (0..batch * INPUTS).map(|_| rng.signed()).collect();
        // Loss = sum of w * Q: its gradient wrt Q is w.
        let w: Vec<f32> = (0..batch * layout.actions).map(|_| rng.signed()).collect();
        let mut act = Activations::new();
        forward(&params, &layout, &x, batch, &mut act);
        let mut grad = vec![0.0f32; layout.len()];
        backward(
            &params,
            &layout,
            &act,
            &w,
            &mut grad,
            &mut BackwardScratch::new(),
        );
        // A few parameters of every layer, checked by central differences.
        let mut probes = Vec::new();
        for l in layout.linears() {
            probes.push(l.w + 5 % (l.input * l.output));
            probes.push(l.w + (l.input * l.output) / 2 + 1);
            probes.push(l.b + l.output / 2);
        }
        for n in &layout.norm {
            probes.push(n.gamma + 7);
            probes.push(n.beta + 11);
        }
        // f32 central differences are noisy and a step may cross a ReLU
        // kink: a probe passes if one of three step sizes agrees.
        let mut checked_nonzero = 0;
        for &i in &probes {
            let analytic = f64::from(grad[i]);
            let mut best = f64::INFINITY;
            for h in [3e-2f32, 1e-2, 3e-3] {
                let mut plus = params.clone();
                plus[i] += h;
                let mut minus = params.clone();
                minus[i] -= h;
                let numeric = (loss(&plus, &layout, &x, batch, &w)
                    - loss(&minus, &layout, &x, batch, &w))
                    / (2.0 * f64::from(h));
                let tol = 3e-2 * numeric.abs().max(analytic.abs()) + 3e-4;
                best = best.min((numeric - analytic).abs() / tol);
            }
            assert!(
                best <= 1.0,
                "parameter {i}: analytic {analytic}, off by {best} tolerances"
            );
            if analytic.abs() > 1e-3 {
                checked_nonzero += 1;
            }
        }
        assert!(
            checked_nonzero > probes.len() / 2,
            "most probes have a real gradient"
        );
    }

    #[test]
    fn query_and_key_gradients_are_exactly_zero_through_a_length_one_softmax() {
        let layout = Layout::new(33);
        let mut rng = Rng::new(5, 0);
        let params = layout.init(&mut rng);
        let x: Vec<f32> = (0..2 * INPUTS).map(|_| rng.signed()).collect();
        let mut act = Activations::new();
        forward(&params, &layout, &x, 2, &mut act);
        let dq: Vec<f32> = (0..2 * 33).map(|_| rng.signed()).collect();
        let mut grad = vec![0.0f32; layout.len()];
        backward(
            &params,
            &layout,
            &act,
            &dq,
            &mut grad,
            &mut BackwardScratch::new(),
        );
        for l in &layout.attn[..2] {
            assert!(grad[l.w..l.b + l.output].iter().all(|&g| g == 0.0));
        }
        let v = layout.attn[2];
        assert!(grad[v.w..v.b + v.output].iter().any(|&g| g != 0.0));
    }

    #[test]
    fn adam_moves_parameters_against_the_gradient_and_clipping_bounds_the_norm() {
        let mut params = vec![1.0f32, -1.0, 0.5];
        let mut grad = vec![30.0f32, -40.0, 0.0];
        let norm = clip_grad_norm(&mut grad, 5.0);
        assert_eq!(norm, 50.0);
        assert!((dot(&grad, &grad).sqrt() - 5.0).abs() < 1e-5);
        let mut adam = Adam::new(3);
        adam.step(&mut params, &grad, 0.1);
        assert!(params[0] < 1.0 && params[1] > -1.0 && params[2] == 0.5);
        assert_eq!(adam.steps, 1);
    }

    #[test]
    fn fused_clipping_gives_the_same_bits_as_clipping_then_adam() {
        let mut rng = Rng::new(11, 0);
        let grad: Vec<f32> = (0..1000).map(|_| rng.signed() * 3.0).collect();
        let start: Vec<f32> = (0..1000).map(|_| rng.signed()).collect();
        let (mut a, mut b) = (start.clone(), start);
        let (mut adam_a, mut adam_b) = (Adam::new(1000), Adam::new(1000));
        let mut clipped = grad.clone();
        clip_grad_norm(&mut clipped, 10.0);
        adam_a.step(&mut a, &clipped, 1e-3);
        let (scale, _) = clip_factor(&grad, 10.0);
        assert!(scale < 1.0);
        adam_b.step_scaled(&mut b, &grad, scale, 1e-3);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(adam_a, adam_b);
    }

    #[test]
    fn dot_gives_the_same_bits_as_a_fixed_order_reference() {
        let a: Vec<f32> = (0..29).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..29).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut acc = [0.0f32; 8];
        for c in 0..3 {
            for i in 0..8 {
                acc[i] += a[c * 8 + i] * b[c * 8 + i];
            }
        }
        let mut tail = 0.0f32;
        for i in 24..29 {
            tail += a[i] * b[i];
        }
        let reference = ((acc[0] + acc[4]) + (acc[1] + acc[5]))
            + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
            + tail;
        assert_eq!(dot(&a, &b).to_bits(), reference.to_bits());
    }
}
