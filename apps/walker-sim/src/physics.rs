//! The physics of one walker: seven rigid rods in 2D (torso, and per leg a
//! thigh, a shin and a foot) held by six revolute joints, driven by joint
//! motors from the agent's action, standing on the ground with friction.
//!
//! Each substep (1/60 s, as the original's fixed step) applies gravity and
//! the motor torques, then runs [`SOLVER_ITERATIONS`] rounds of sequential
//! impulses over the joints (point constraints with position correction)
//! and the ground contacts of the rods' 14 end points (non-penetration and
//! Coulomb friction), then integrates. Rotations are unit complex numbers,
//! so the only library function used is `sqrt`: the same bits everywhere.
//! The iteration count is fixed (not measured at start), so every run
//! computes the same thing; it was chosen so that one agent-substep costs
//! about 4 us on the development machine (the figure of `walker.md`).
//!
//! Agents never touch each other: each [`Body`] is an island, which is what
//! allows the island-parallel physics variant to give the same result.

/// Velocity iterations per substep.
pub const SOLVER_ITERATIONS: usize = 18;
/// Rigid parts of a walker.
pub const PARTS: usize = 7;
/// Joints of a walker.
pub const JOINTS: usize = 6;
/// Features of an [`Observation`] (without the position).
pub const OBS_FEATURES: usize = 20;
/// The fixed step.
pub const DT: f32 = 1.0 / 60.0;

const GRAVITY: f32 = 9.81;
const FRICTION: f32 = 0.8;
/// Position correction per substep (Baumgarte factor).
const BETA: f32 = 0.2;
/// Motor angular acceleration at full command (rad/s^2, times strength).
const MOTOR_ACCEL: f32 = 150.0;
/// Rest-angle spring and damping, per unit of inertia.
const SPRING: f32 = 300.0;
const DAMPING: f32 = 20.0;
const MAX_SPEED: f32 = 50.0;
const MAX_SPIN: f32 = 50.0;
/// Spacing of the walkers' spawn points along x.
pub const SPAWN_SPACING: f32 = 4.0;

/// A body part: a rod along its local x axis.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Part {
    x: f32,
    y: f32,
    /// cos and sin of the rod's angle.
    c: f32,
    s: f32,
    vx: f32,
    vy: f32,
    w: f32,
    half: f32,
    inv_mass: f32,
    inv_inertia: f32,
}

impl Part {
    fn new(half: f32, mass: f32, x: f32, y: f32, c: f32, s: f32) -> Self {
        let inertia = mass * (2.0 * half) * (2.0 * half) / 12.0;
        Self {
            x,
            y,
            c,
            s,
            vx: 0.0,
            vy: 0.0,
            w: 0.0,
            half,
            inv_mass: 1.0 / mass,
            inv_inertia: 1.0 / inertia,
        }
    }

    /// A local point rotated into world orientation (relative to the centre).
    fn rotate(&self, lx: f32, ly: f32) -> (f32, f32) {
        (self.c * lx - self.s * ly, self.s * lx + self.c * ly)
    }
}

/// A revolute joint: an anchor on the parent and one on the child (local
/// x offsets along the rods) that must coincide, and a motor.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Joint {
    parent: usize,
    child: usize,
    parent_anchor: f32,
    child_anchor: f32,
}

const JOINT_SET: [Joint; JOINTS] = {
    // Parts: 0 torso, 1-3 left thigh/shin/foot, 4-6 right.
    const fn leg(first: usize, hip: f32) -> [Joint; 3] {
        [
            Joint {
                parent: 0,
                child: first,
                parent_anchor: hip,
                child_anchor: -1.0,
            },
            Joint {
                parent: first,
                child: first + 1,
                parent_anchor: 1.0,
                child_anchor: -1.0,
            },
            Joint {
                parent: first + 1,
                child: first + 2,
                parent_anchor: 1.0,
                child_anchor: -0.5,
            },
        ]
    }
    let l = leg(1, -0.5);
    let r = leg(4, 0.5);
    [l[0], l[1], l[2], r[0], r[1], r[2]]
};

/// What the agent sees of its body after a frame's physics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observation {
    /// Torso position along the ground.
    pub x: f32,
    /// Torso height, orientation (cos, sin), velocity (x, y), spin; per
    /// joint the sine of its angle and its relative spin; the two feet's
    /// ground contacts.
    pub features: [f32; OBS_FEATURES],
    /// Motor effort spent during the frame.
    pub effort: f32,
}

/// One walker's physical state and its motor command.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    parts: [Part; PARTS],
    /// The action index the motors apply (set from the agent each frame).
    pub command: u32,
    /// Motor strength factor of the body type.
    strength: f32,
    spawn_x: f32,
    leg_scale: f32,
    /// Times the body was reset after leaving the sane range.
    pub resets: u32,
    /// The observation after the last [`step`](Self::step).
    pub observation: Observation,
    feet_contact: [bool; 2],
}

impl Body {
    /// A walker standing at `x`, with legs scaled by `leg_scale` (bigger
    /// bodies have longer legs and stronger motors).
    pub fn new(x: f32, leg_scale: f32) -> Self {
        let mut b = Self {
            parts: [Part::new(0.1, 1.0, 0.0, 0.0, 1.0, 0.0); PARTS],
            command: 0,
            strength: leg_scale,
            spawn_x: x,
            leg_scale,
            resets: 0,
            observation: Observation::default(),
            feet_contact: [false; 2],
        };
        b.pose(x);
        b.observe(0.0);
        b
    }

    /// Puts the body upright at `x`, at rest, all joints satisfied.
    fn pose(&mut self, x: f32) {
        let (th, sh, ft) = (0.45 * self.leg_scale, 0.4 * self.leg_scale, 0.15);
        let hip_y = 0.02 + 2.0 * th + 2.0 * sh;
        let torso = Part::new(0.4, 10.0, x, hip_y, 1.0, 0.0);
        self.parts[0] = torso;
        for (first, hip) in [(1usize, -0.5f32), (4, 0.5)] {
            let hx = x + hip * torso.half;
            // Legs point down: angle -90 degrees, (cos, sin) = (0, -1).
            self.parts[first] = Part::new(th, 3.0, hx, hip_y - th, 0.0, -1.0);
            self.parts[first + 1] = Part::new(sh, 2.0, hx, hip_y - 2.0 * th - sh, 0.0, -1.0);
            // The foot is horizontal; its anchor is at half its half-length.
            self.parts[first + 2] = Part::new(ft, 1.0, hx + 0.5 * ft, 0.02, 1.0, 0.0);
        }
    }

    /// The torques of the six motors for action `a`: base-3 digits of the
    /// action (-1, 0, +1) times the motor's strength, plus a damped spring
    /// toward the rest angle. Every term scales with the driven part's
    /// inertia, so light feet are driven as gently (and as stably, with an
    /// explicit damping step well under one) as heavy thighs.
    fn torques(&self, a: u32) -> [f32; JOINTS] {
        let mut code = a;
        std::array::from_fn(|j| {
            let level = (code % 3) as f32 - 1.0;
            code /= 3;
            let joint = JOINT_SET[j];
            let (p, c) = (&self.parts[joint.parent], &self.parts[joint.child]);
            // sin of the child's angle relative to its rest angle.
            let (rc, rs) = (p.c * c.c + p.s * c.s, p.c * c.s - p.s * c.c);
            let rest_sin = if j % 3 == 2 { 1.0 } else { 0.0 };
            let rest_cos = if j % 3 == 2 { 0.0 } else { 1.0 };
            let off = rest_cos * rs - rest_sin * rc;
            let inertia = 1.0 / c.inv_inertia;
            inertia * (MOTOR_ACCEL * self.strength * level - SPRING * off - DAMPING * (c.w - p.w))
        })
    }

    /// Advances the body by `substeps` steps of [`DT`] with its command.
    pub fn step(&mut self, substeps: usize) {
        let mut effort = 0.0f32;
        for _ in 0..substeps {
            effort += self.substep();
        }
        let sane = self.parts.iter().all(|p| {
            p.x.is_finite()
                && p.y.is_finite()
                && p.vx.is_finite()
                && p.vy.is_finite()
                && p.w.is_finite()
                && (p.x - self.spawn_x).abs() < 1.0e4
                && p.y.abs() < 100.0
        });
        if !sane {
            // Deterministic recovery: stand up again where the torso was.
            let x = if self.parts[0].x.is_finite() {
                self.parts[0].x
            } else {
                self.spawn_x
            };
            self.pose(x);
            self.resets += 1;
        }
        self.observe(effort);
    }

    /// Puts the body back at its spawn point (the ecosystem's respawn).
    pub fn respawn(&mut self) {
        self.pose(self.spawn_x);
        self.observe(0.0);
    }

    /// One step: forces, solver, integration. Returns the motor effort.
    fn substep(&mut self) -> f32 {
        let torques = self.torques(self.command);
        let mut effort = 0.0f32;
        for p in &mut self.parts {
            p.vy -= GRAVITY * DT;
        }
        for (j, tau) in torques.iter().enumerate() {
            let joint = JOINT_SET[j];
            let impulse = tau * DT;
            self.parts[joint.child].w += impulse * self.parts[joint.child].inv_inertia;
            self.parts[joint.parent].w -= impulse * self.parts[joint.parent].inv_inertia;
            effort += tau.abs() * DT;
        }
        // Ground contacts of the rods' end points, found once per substep.
        let mut contacts = [(0usize, 0.0f32, 0.0f32, 0.0f32); 2 * PARTS];
        let mut n_contacts = 0;
        for (i, p) in self.parts.iter().enumerate() {
            for end in [-1.0f32, 1.0] {
                let (rx, ry) = p.rotate(end * p.half, 0.0);
                let depth = -(p.y + ry);
                if depth > 0.0 {
                    contacts[n_contacts] = (i, rx, ry, depth);
                    n_contacts += 1;
                }
            }
        }
        let mut normal = [0.0f32; 2 * PARTS];
        let mut tangent = [0.0f32; 2 * PARTS];
        for _ in 0..SOLVER_ITERATIONS {
            for joint in &JOINT_SET {
                self.solve_joint(joint);
            }
            for (k, &(i, rx, ry, depth)) in contacts[..n_contacts].iter().enumerate() {
                let p = &mut self.parts[i];
                // Normal: relative velocity of the point along +y.
                let vn = p.vy + p.w * rx;
                let k_n = p.inv_mass + rx * rx * p.inv_inertia;
                let bias = BETA / DT * (depth - 0.005).max(0.0);
                let lambda = -(vn - bias) / k_n;
                let total = (normal[k] + lambda).max(0.0);
                let dn = total - normal[k];
                normal[k] = total;
                p.vy += dn * p.inv_mass;
                p.w += rx * dn * p.inv_inertia;
                // Friction along x, bounded by the normal impulse.
                let vt = p.vx - p.w * ry;
                let k_t = p.inv_mass + ry * ry * p.inv_inertia;
                let limit = FRICTION * normal[k];
                let total_t = (tangent[k] - vt / k_t).clamp(-limit, limit);
                let dt = total_t - tangent[k];
                tangent[k] = total_t;
                p.vx += dt * p.inv_mass;
                p.w -= ry * dt * p.inv_inertia;
            }
        }
        for p in &mut self.parts {
            p.vx = p.vx.clamp(-MAX_SPEED, MAX_SPEED);
            p.vy = p.vy.clamp(-MAX_SPEED, MAX_SPEED);
            p.w = p.w.clamp(-MAX_SPIN, MAX_SPIN);
            p.x += p.vx * DT;
            p.y += p.vy * DT;
            // Rotate by w*DT (first order), then renormalise.
            let a = p.w * DT;
            let (c, s) = (p.c - p.s * a, p.s + p.c * a);
            let inv = 1.0 / (c * c + s * s).sqrt();
            p.c = c * inv;
            p.s = s * inv;
        }
        for (f, part) in [3usize, 6].into_iter().enumerate() {
            self.feet_contact[f] = contacts[..n_contacts].iter().any(|c| c.0 == part);
        }
        effort
    }

    /// One sequential-impulse pass of a point constraint.
    fn solve_joint(&mut self, joint: &Joint) {
        let (a, b) = (joint.parent, joint.child);
        let (pa, pb) = (self.parts[a], self.parts[b]);
        let (rax, ray) = pa.rotate(joint.parent_anchor * pa.half, 0.0);
        let (rbx, rby) = pb.rotate(joint.child_anchor * pb.half, 0.0);
        // Position error and relative velocity of the anchors.
        let cx = (pb.x + rbx) - (pa.x + rax);
        let cy = (pb.y + rby) - (pa.y + ray);
        let vx = (pb.vx - pb.w * rby) - (pa.vx - pa.w * ray);
        let vy = (pb.vy + pb.w * rbx) - (pa.vy + pa.w * rax);
        let (ma, mb, ia, ib) = (pa.inv_mass, pb.inv_mass, pa.inv_inertia, pb.inv_inertia);
        let k11 = ma + mb + ray * ray * ia + rby * rby * ib;
        let k12 = -ray * rax * ia - rby * rbx * ib;
        let k22 = ma + mb + rax * rax * ia + rbx * rbx * ib;
        let det = k11 * k22 - k12 * k12;
        if det.abs() < 1e-12 {
            return;
        }
        let inv_det = 1.0 / det;
        let (bx, by) = (vx + BETA / DT * cx, vy + BETA / DT * cy);
        let lx = -(k22 * bx - k12 * by) * inv_det;
        let ly = -(-k12 * bx + k11 * by) * inv_det;
        let pa = &mut self.parts[a];
        pa.vx -= lx * ma;
        pa.vy -= ly * ma;
        pa.w -= (rax * ly - ray * lx) * ia;
        let pb = &mut self.parts[b];
        pb.vx += lx * mb;
        pb.vy += ly * mb;
        pb.w += (rbx * ly - rby * lx) * ib;
    }

    /// The largest distance between the two anchors of a joint: how well
    /// the solver holds the body together.
    pub fn max_joint_error(&self) -> f32 {
        JOINT_SET
            .iter()
            .map(|j| {
                let (pa, pb) = (&self.parts[j.parent], &self.parts[j.child]);
                let (ax, ay) = pa.rotate(j.parent_anchor * pa.half, 0.0);
                let (bx, by) = pb.rotate(j.child_anchor * pb.half, 0.0);
                let (dx, dy) = ((pb.x + bx) - (pa.x + ax), (pb.y + by) - (pa.y + ay));
                (dx * dx + dy * dy).sqrt()
            })
            .fold(0.0, f32::max)
    }

    /// The lowest point of the body (its rods' end points).
    pub fn lowest_point(&self) -> f32 {
        self.parts
            .iter()
            .flat_map(|p| [-1.0f32, 1.0].map(|end| p.y + p.rotate(end * p.half, 0.0).1))
            .fold(f32::INFINITY, f32::min)
    }

    fn observe(&mut self, effort: f32) {
        let t = self.parts[0];
        let mut f = [0.0f32; OBS_FEATURES];
        f[..6].copy_from_slice(&[t.y, t.c, t.s, t.vx, t.vy, t.w]);
        for (j, joint) in JOINT_SET.iter().enumerate() {
            let (p, c) = (&self.parts[joint.parent], &self.parts[joint.child]);
            f[6 + j] = p.c * c.s - p.s * c.c;
            f[12 + j] = c.w - p.w;
        }
        f[18] = f32::from(u8::from(self.feet_contact[0]));
        f[19] = f32::from(u8::from(self.feet_contact[1]));
        self.observation = Observation {
            x: t.x,
            features: f,
            effort,
        };
    }

    /// Feeds every float of the state to `hash`.
    pub fn hash_into(&self, hash: &mut crate::hash::StateHash) {
        for p in &self.parts {
            hash.f32s(&[p.x, p.y, p.c, p.s, p.vx, p.vy, p.w]);
        }
        hash.u64(u64::from(self.command));
        hash.u64(u64::from(self.resets));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_body_has_its_joints_together_and_its_feet_on_the_ground() {
        let b = Body::new(3.0, 1.2);
        assert!(b.max_joint_error() < 1e-5, "{}", b.max_joint_error());
        assert!(b.lowest_point().abs() < 0.05, "{}", b.lowest_point());
    }

    #[test]
    fn an_unpowered_body_settles_on_the_ground_in_one_piece() {
        let mut b = Body::new(0.0, 1.0);
        b.command = 364; // every base-3 digit 1: no motor torque
        for _ in 0..600 {
            b.step(5);
        }
        let o = b.observation;
        assert!(o.features.iter().all(|x| x.is_finite()));
        assert_eq!(b.resets, 0);
        // Held together, resting on (not sinking into) the ground, at rest.
        assert!(
            b.max_joint_error() < 0.05,
            "joint error {}",
            b.max_joint_error()
        );
        assert!(b.lowest_point() > -0.1, "lowest point {}", b.lowest_point());
        assert!(
            o.features[3].abs() < 0.5 && o.features[4].abs() < 0.5,
            "{:?}",
            o.features
        );
    }

    #[test]
    fn flailing_bodies_stay_finite_for_a_long_time() {
        let mut b = Body::new(8.0, 1.3);
        for frame in 0..3000u32 {
            b.command = frame.wrapping_mul(2_654_435_761) % 91;
            b.step(5);
            assert!(b.observation.features.iter().all(|x| x.is_finite()));
            assert!(
                b.max_joint_error() < 0.3,
                "frame {frame}: {}",
                b.max_joint_error()
            );
        }
        assert_eq!(b.resets, 0);
    }

    #[test]
    fn the_same_commands_give_the_same_bits() {
        let run = || {
            let mut b = Body::new(4.0, 1.1);
            for frame in 0..200u32 {
                b.command = frame % 25;
                b.step(5);
            }
            b
        };
        assert_eq!(run(), run());
    }
}
