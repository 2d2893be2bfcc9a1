"""A double pendulum whose equations of motion come from its Lagrangian by automatic differentiation.

Only the energy is written by hand: L = T - V of the two angles and angular velocities.
The Euler-Lagrange equations  M(q, w) a = dL/dq - (d/dq dL/dw) w,  with the mass matrix
M = d2L/dw2, are built with tg.grad, tg.hessian and tg.jacfwd, solved (2 x 2) inside the
traced code, and one RK4 step is compiled. The script checks the accelerations against
the textbook closed form, integrates, reports how well the total energy is conserved, and
differentiates the final angle with respect to the initial angle through the whole
unrolled integration (checked against finite differences).

    python examples/pendulum.py [--fast] [--steps 2000] [--dt 0.001]
"""
import argparse
import math

import tracegrad as tg

G, M1, M2, L1, L2 = 9.81, 1.0, 1.0, 1.0, 1.0


def lagrangian(t1, t2, w1, w2):
    kinetic = (0.5 * (M1 + M2) * L1 ** 2 * w1 ** 2 + 0.5 * M2 * L2 ** 2 * w2 ** 2
               + M2 * L1 * L2 * w1 * w2 * tg.cos(t1 - t2))
    potential = -(M1 + M2) * G * L1 * tg.cos(t1) - M2 * G * L2 * tg.cos(t2)
    return kinetic - potential


def energy(t1, t2, w1, w2):
    """The Hamiltonian  w . dL/dw - L  (kinetic plus potential energy)."""
    p1, p2 = tg.grad(lagrangian, argnums=(2, 3))(t1, t2, w1, w2)
    return w1 * p1 + w2 * p2 - lagrangian(t1, t2, w1, w2)


def acceleration(t1, t2, w1, w2):
    """Angular accelerations from the Euler-Lagrange equations, all by differentiation."""
    dl_dq = tg.grad(lagrangian, argnums=(0, 1))(t1, t2, w1, w2)
    mass = tg.hessian(lagrangian, argnums=(2, 3))(t1, t2, w1, w2)
    mixed = tg.jacfwd(tg.grad(lagrangian, argnums=(2, 3)), argnums=(0, 1))(t1, t2, w1, w2)
    r1 = dl_dq[0] - mixed[0][0] * w1 - mixed[0][1] * w2
    r2 = dl_dq[1] - mixed[1][0] * w1 - mixed[1][1] * w2
    det = mass[0][0] * mass[1][1] - mass[0][1] * mass[1][0]   # Cramer's rule for the 2 x 2 system
    return (r1 * mass[1][1] - mass[0][1] * r2) / det, (mass[0][0] * r2 - mass[1][0] * r1) / det


def textbook_acceleration(t1, t2, w1, w2):
    """The closed form found in mechanics textbooks, to check the derived one."""
    d = t1 - t2
    den = 2 * M1 + M2 - M2 * math.cos(2 * d)
    a1 = (-G * (2 * M1 + M2) * math.sin(t1) - M2 * G * math.sin(t1 - 2 * t2)
          - 2 * math.sin(d) * M2 * (w2 ** 2 * L2 + w1 ** 2 * L1 * math.cos(d))) / (L1 * den)
    a2 = (2 * math.sin(d) * (w1 ** 2 * L1 * (M1 + M2) + G * (M1 + M2) * math.cos(t1)
                             + w2 ** 2 * L2 * M2 * math.cos(d))) / (L2 * den)
    return a1, a2


def rk4_step(state, dt):
    """One classical Runge-Kutta step of (t1, t2, w1, w2)."""
    def deriv(s):
        return (s[2], s[3]) + acceleration(*s)

    def shifted(s, k, h):
        return tuple(si + h * ki for si, ki in zip(s, k))

    k1 = deriv(state)
    k2 = deriv(shifted(state, k1, dt / 2))
    k3 = deriv(shifted(state, k2, dt / 2))
    k4 = deriv(shifted(state, k3, dt))
    return tuple(s + dt / 6 * (a + 2 * b + 2 * c + d) for s, a, b, c, d in zip(state, k1, k2, k3, k4))


def final_angle(t1_start, steps, dt):
    """The first angle after ``steps`` RK4 steps from rest at (t1_start, 0.5): unrolled when traced."""
    state = (t1_start, 0.5, 0.0, 0.0)
    for _ in range(steps):
        state = rk4_step(state, dt)
    return state[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer steps (for the test suite)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--dt", type=float, default=0.001)
    args = parser.parse_args(argv)
    steps = 200 if args.fast else args.steps
    sens_steps = 5 if args.fast else 20

    point = (1.2, -0.4, 0.7, -1.3)
    derived = tg.jit(acceleration)(*point)
    expected = textbook_acceleration(*point)
    accel_error = max(abs(a - b) for a, b in zip(derived, expected))
    print(f"accelerations by differentiation {derived}, textbook {expected}: max difference {accel_error:.1e}")

    step = tg.jit(rk4_step)
    total_energy = tg.jit(energy)
    state = (2.0, 0.5, 0.0, 0.0)
    e0 = total_energy(*state)
    drift = 0.0
    for _ in range(steps):
        state = step(state, args.dt)
        drift = max(drift, abs(total_energy(*state) - e0))
    print(f"{steps} RK4 steps of {args.dt} s: energy {e0:.6f} J, largest drift {drift:.1e} J")

    # steps and dt stay Python numbers (every argument of a traced function is traced)
    dfinal = tg.grad(lambda t1: final_angle(t1, sens_steps, args.dt))(2.0)
    h = 1e-6
    numeric = (final_angle(2.0 + h, sens_steps, args.dt) - final_angle(2.0 - h, sens_steps, args.dt)) / (2 * h)
    print(f"d(angle after {sens_steps} steps)/d(initial angle) = {dfinal:.10f} (finite differences {numeric:.10f})")
    return {"accel_error": accel_error, "energy_drift": drift, "energy": e0,
            "sensitivity": dfinal, "sensitivity_numeric": numeric}


if __name__ == "__main__":
    main()
