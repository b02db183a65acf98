//! Optimal linear assignment (Hungarian method with shortest augmenting paths, the
//! formulation Jonker and Volgenant build on).
//!
//! The tracker and the evaluator both need a *minimum-cost* one-to-one matching on
//! rectangular matrices, where some pairs are forbidden (gated out). Greedy matching is
//! what makes simple trackers swap identities when two objects cross, so this is the
//! exact algorithm: `O(n^2 m)` for `n <= m`, which is microseconds for the tens of
//! tracks a camera sees per frame.
//!
//! Forbidden pairs are replaced by a cost larger than any feasible sum of allowed costs,
//! so the solver first maximises the number of allowed pairs and then minimises their
//! cost (the same convention as `motmetrics`' `linear_sum_assignment` wrapper); pairs
//! that end up on a forbidden cost are reported as unassigned.

/// Reusable solver: its buffers are kept between calls so the per-frame path does not
/// allocate once it has seen its largest problem.
#[derive(Debug, Default, Clone)]
pub struct AssignmentSolver {
    /// Sanitised (and, when rows > cols, transposed) cost matrix, row-major.
    work: Vec<f64>,
    /// Row potentials (1-based; index 0 is the virtual start row).
    u: Vec<f64>,
    /// Column potentials (1-based; index 0 is the virtual start column).
    v: Vec<f64>,
    /// `p[j]`: 1-based row assigned to column `j`, 0 for none.
    p: Vec<usize>,
    /// Predecessor column on the current shortest augmenting path.
    way: Vec<usize>,
    /// Shortest reduced distance found so far to each column.
    minv: Vec<f64>,
    used: Vec<bool>,
    /// `row_to_col` of the last solve, in the caller's orientation.
    result: Vec<Option<usize>>,
}

impl AssignmentSolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Minimum-cost assignment of a `rows` x `cols` row-major `cost` matrix. Pairs whose
    /// cost is not finite or exceeds `max_cost` are never matched. Returns, per row, the
    /// matched column. Among all matchings with the largest number of allowed pairs, the
    /// one with the smallest total cost is returned.
    ///
    /// # Panics
    /// Never; a `cost` slice shorter than `rows * cols` is treated as all-forbidden in
    /// the missing part.
    pub fn solve(
        &mut self,
        cost: &[f64],
        rows: usize,
        cols: usize,
        max_cost: f64,
    ) -> &[Option<usize>] {
        self.result.clear();
        self.result.resize(rows, None);
        if rows == 0 || cols == 0 {
            return &self.result;
        }
        // The core algorithm needs n <= m; solve the transpose otherwise.
        let transpose = rows > cols;
        let (n, m) = if transpose {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let allowed = |c: f64| c.is_finite() && c <= max_cost;
        let at = |r: usize, c: usize| cost.get(r * cols + c).copied().unwrap_or(f64::NAN);

        // A forbidden pair must cost more than any matching made of allowed pairs, so
        // that trading one forbidden pair for an allowed one always lowers the total.
        let mut max_abs = 0.0f64;
        for r in 0..rows {
            for c in 0..cols {
                let x = at(r, c);
                if allowed(x) {
                    max_abs = max_abs.max(x.abs());
                }
            }
        }
        let forbidden = (max_abs + 1.0) * (n as f64 + 1.0) * 2.0;

        self.work.clear();
        self.work.reserve(n * m);
        for i in 0..n {
            for j in 0..m {
                let x = if transpose { at(j, i) } else { at(i, j) };
                self.work.push(if allowed(x) { x } else { forbidden });
            }
        }

        self.run(n, m);

        for j in 1..=m {
            let i = self.p[j];
            if i == 0 {
                continue;
            }
            let (r, c) = if transpose {
                (j - 1, i - 1)
            } else {
                (i - 1, j - 1)
            };
            if allowed(at(r, c)) {
                self.result[r] = Some(c);
            }
        }
        &self.result
    }

    /// Shortest-augmenting-path Hungarian on `self.work` (`n` x `m`, `n <= m`). Keeps
    /// dual potentials `u`, `v` with `work[i][j] - u[i] - v[j] >= 0`, adding one row at a
    /// time along a Dijkstra-like search over reduced costs.
    fn run(&mut self, n: usize, m: usize) {
        reset(&mut self.u, n + 1, 0.0);
        reset(&mut self.v, m + 1, 0.0);
        reset(&mut self.p, m + 1, 0);
        reset(&mut self.way, m + 1, 0);
        for i in 1..=n {
            self.p[0] = i;
            let mut j0 = 0usize;
            reset(&mut self.minv, m + 1, f64::INFINITY);
            reset(&mut self.used, m + 1, false);
            loop {
                self.used[j0] = true;
                let i0 = self.p[j0];
                let row = &self.work[(i0 - 1) * m..i0 * m];
                let mut delta = f64::INFINITY;
                let mut j1 = 0usize;
                for j in 1..=m {
                    if self.used[j] {
                        continue;
                    }
                    let reduced = row[j - 1] - self.u[i0] - self.v[j];
                    if reduced < self.minv[j] {
                        self.minv[j] = reduced;
                        self.way[j] = j0;
                    }
                    if self.minv[j] < delta {
                        delta = self.minv[j];
                        j1 = j;
                    }
                }
                for j in 0..=m {
                    if self.used[j] {
                        self.u[self.p[j]] += delta;
                        self.v[j] -= delta;
                    } else {
                        self.minv[j] -= delta;
                    }
                }
                j0 = j1;
                if self.p[j0] == 0 {
                    break;
                }
            }
            // Flip the augmenting path back to the start.
            loop {
                let j1 = self.way[j0];
                self.p[j0] = self.p[j1];
                j0 = j1;
                if j0 == 0 {
                    break;
                }
            }
        }
    }
}

fn reset<T: Copy>(buf: &mut Vec<T>, len: usize, value: T) {
    buf.clear();
    buf.resize(len, value);
}

/// One-shot convenience over [`AssignmentSolver::solve`].
pub fn assign(cost: &[f64], rows: usize, cols: usize, max_cost: f64) -> Vec<Option<usize>> {
    AssignmentSolver::new()
        .solve(cost, rows, cols, max_cost)
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Best (max allowed pairs, then min cost) over every injective row->column map.
    fn brute_force(cost: &[f64], rows: usize, cols: usize, max_cost: f64) -> (usize, f64) {
        struct Search<'a> {
            cost: &'a [f64],
            rows: usize,
            cols: usize,
            max_cost: f64,
            used: Vec<bool>,
            best: (usize, f64),
        }
        impl Search<'_> {
            fn go(&mut self, r: usize, acc: (usize, f64)) {
                if r == self.rows {
                    if acc.0 > self.best.0 || (acc.0 == self.best.0 && acc.1 < self.best.1) {
                        self.best = acc;
                    }
                    return;
                }
                // Leave row r unmatched.
                self.go(r + 1, acc);
                for c in 0..self.cols {
                    let x = self.cost[r * self.cols + c];
                    if self.used[c] || !(x.is_finite() && x <= self.max_cost) {
                        continue;
                    }
                    self.used[c] = true;
                    self.go(r + 1, (acc.0 + 1, acc.1 + x));
                    self.used[c] = false;
                }
            }
        }
        let mut s = Search {
            cost,
            rows,
            cols,
            max_cost,
            used: vec![false; cols],
            best: (0, f64::INFINITY),
        };
        s.go(0, (0, 0.0));
        if s.best.0 == 0 {
            s.best.1 = 0.0;
        }
        s.best
    }

    fn score(cost: &[f64], cols: usize, result: &[Option<usize>]) -> (usize, f64) {
        let mut seen = vec![false; cols];
        let mut total = (0, 0.0);
        for (r, c) in result.iter().enumerate() {
            if let Some(c) = *c {
                assert!(!seen[c], "column {c} assigned twice");
                seen[c] = true;
                total.0 += 1;
                total.1 += cost[r * cols + c];
            }
        }
        total
    }

    #[test]
    fn known_square_case() {
        // Greedy would take (0,0)=1 and then be forced into (1,1)=10; optimal is 2+3.
        let cost = [1.0, 2.0, 3.0, 10.0];
        assert_eq!(assign(&cost, 2, 2, f64::INFINITY), vec![Some(1), Some(0)]);
    }

    #[test]
    fn gating_and_rectangular() {
        let cost = [0.1, 0.9, 0.95, 0.2, 0.9, 0.9];
        // 3 rows x 2 cols; row 2 only has gated-out options.
        assert_eq!(assign(&cost, 3, 2, 0.5), vec![Some(0), Some(1), None]);
        assert_eq!(assign(&cost, 3, 2, 0.15), vec![Some(0), None, None]);
        let wide = [0.9, 0.1, 0.9, 0.9, 0.9, 0.2];
        assert_eq!(assign(&wide, 2, 3, 0.5), vec![Some(1), Some(2)]);
        assert!(assign(&[], 0, 3, 1.0).is_empty());
        assert_eq!(assign(&[], 2, 0, 1.0), vec![None, None]);
        assert_eq!(assign(&[f64::NAN], 1, 1, 1.0), vec![None]);
    }

    #[test]
    fn prefers_more_pairs_over_cheaper_total() {
        // One pair at 0.0 vs two pairs at 0.4 + 0.4: the larger matching wins.
        let cost = [0.0, 0.4, 0.4, 9.0];
        assert_eq!(assign(&cost, 2, 2, 1.0), vec![Some(1), Some(0)]);
    }

    proptest! {
        #[test]
        fn matches_brute_force(
            rows in 0usize..6,
            cols in 0usize..6,
            seed in prop::collection::vec(0.0f64..1.0, 36),
            gate in 0.2f64..1.1,
        ) {
            let cost: Vec<f64> = seed[..rows * cols].to_vec();
            let mut solver = AssignmentSolver::new();
            let result = solver.solve(&cost, rows, cols, gate).to_vec();
            prop_assert_eq!(result.len(), rows);
            let got = score(&cost, cols, &result);
            let want = brute_force(&cost, rows, cols, gate);
            prop_assert_eq!(got.0, want.0);
            prop_assert!((got.1 - want.1).abs() < 1e-9, "cost {} vs brute force {}", got.1, want.1);
        }

        #[test]
        fn integer_costs_match_brute_force(
            rows in 1usize..6,
            cols in 1usize..6,
            seed in prop::collection::vec(0u8..5, 36),
        ) {
            // Many ties: checks that equal-cost alternatives don't confuse the solver.
            let cost: Vec<f64> = seed[..rows * cols].iter().map(|&x| f64::from(x)).collect();
            let result = assign(&cost, rows, cols, 3.0);
            let got = score(&cost, cols, &result);
            let want = brute_force(&cost, rows, cols, 3.0);
            prop_assert_eq!(got.0, want.0);
            prop_assert!((got.1 - want.1).abs() < 1e-9);
        }
    }
}
