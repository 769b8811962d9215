//! Blocked linear-algebra workloads on the `linalg` built-ins
//! ([`rukong_executor::functions::linalg`]), each with a single-node reference computed by
//! the same crate (faer) on the full matrices, and a check of a run's outputs against it.
//!
//! - [`gemm`]: C = A·B for n×n A and B (the global pseudo-random matrices with seeds
//!   [`GEMM_SEED_A`] and [`GEMM_SEED_B`]) cut into `block`×`block` tiles on a g×g grid,
//!   g = ⌈n / block⌉ (edge tiles are smaller when `block` does not divide n).
//!   Tasks: `a{i}_{k}` = `block(…, seed 1, …)`, `b{k}_{j}` = `block(…, seed 2, …)`,
//!   `p{i}_{j}_{k}` = `matmul(a{i}_{k}, b{k}_{j})`, `c{i}_{j}` = `madd(p{i}_{j}_0, …,
//!   p{i}_{j}_{g-1})`, `f{i}_{j}` = `frobenius(c{i}_{j})`. Outputs: every `f{i}_{j}` and
//!   the sample block `c0_0` ([`gemm_all_blocks`]: every `c{i}_{j}` instead).
//!   g³ + 4g² tasks (36,864 for n = 4096 in 128-blocks).
//! - [`tsqr`]: the singular values of a rows×cols tall matrix (seed [`TSQR_SEED`]) by
//!   TSQR. Tasks: `l{i}` = `block(…)` for each row block of `block_rows` rows,
//!   `r0_{i}` = `qr_r(l{i})`, then pairwise up a tree: `s{L}_{j}` = `vstack(r{L-1}_{2j},
//!   r{L-1}_{2j+1})`, `r{L}_{j}` = `qr_r(s{L}_{j})` (an odd one out is carried up), and
//!   `sv` = `svd_values(root R)`, the only output. 4b − 1 tasks for b row blocks.

use rukong_core::dag::DagSpec;
use rukong_core::{TaskId, Value};
use rukong_executor::functions::linalg::{self, Matrix, Threads};

use crate::JobBuilder;

/// The seed of GEMM's A.
pub const GEMM_SEED_A: u64 = 1;
/// The seed of GEMM's B.
pub const GEMM_SEED_B: u64 = 2;
/// The seed of TSQR's matrix.
pub const TSQR_SEED: u64 = 3;

/// GEMM passes when ‖C − C_ref‖_F / ‖C_ref‖_F (and each block norm's relative error) is
/// below this.
pub const GEMM_REL_TOL: f64 = 1e-10;
/// TSQR passes when every singular value's relative error is below this.
pub const TSQR_REL_TOL: f64 = 1e-8;

/// `e < bound`; false for NaN, so a NaN error fails a check.
fn below(e: f64, bound: f64) -> bool {
    e < bound
}

/// `(start, len)` of each tile along a dimension of `n` cut into `block`s.
fn tiles(n: usize, block: usize) -> Vec<(usize, usize)> {
    let block = block.max(1);
    (0..n.div_ceil(block))
        .map(|t| (t * block, block.min(n - t * block)))
        .collect()
}

/// The grid side g = ⌈n / block⌉.
pub fn gemm_grid(n: usize, block: usize) -> usize {
    n.div_ceil(block.max(1))
}

/// Tasks in [`gemm`] / [`gemm_all_blocks`]: g³ products + g² each of A tiles, B tiles,
/// sums and norms.
pub fn gemm_task_count(n: usize, block: usize) -> usize {
    let g = gemm_grid(n, block);
    g * g * g + 4 * g * g
}

fn gemm_build(n: usize, block: usize, all_blocks: bool, streaming: bool) -> DagSpec {
    let t = tiles(n, block);
    let g = t.len();
    let name = if streaming { "gemm-streaming" } else { "gemm" };
    let mut b = JobBuilder::new(format!("{name}-{n}-{block}"));
    let tile = |b: &mut JobBuilder,
                id: String,
                seed: u64,
                (r0, rows): (usize, usize),
                (c0, cols): (usize, usize)| {
        b.task(id, "block")
            .arg(rows as i64)
            .arg(cols as i64)
            .arg(seed as i64)
            .arg(r0 as i64)
            .arg(c0 as i64);
    };
    if streaming {
        // Layer by layer along k: every product of layer k can run once its layer is made.
        for k in 0..g {
            for i in 0..g {
                tile(&mut b, format!("a{i}_{k}"), GEMM_SEED_A, t[i], t[k]);
            }
            for j in 0..g {
                tile(&mut b, format!("b{k}_{j}"), GEMM_SEED_B, t[k], t[j]);
            }
        }
    } else {
        for i in 0..g {
            for k in 0..g {
                tile(&mut b, format!("a{i}_{k}"), GEMM_SEED_A, t[i], t[k]);
                tile(&mut b, format!("b{i}_{k}"), GEMM_SEED_B, t[i], t[k]);
            }
        }
    }
    for i in 0..g {
        for j in 0..g {
            let c = format!("c{i}_{j}");
            let products: Vec<String> = (0..g).map(|k| format!("p{i}_{j}_{k}")).collect();
            for (k, p) in products.iter().enumerate() {
                b.task(p.as_str(), "matmul")
                    .dep(format!("a{i}_{k}"))
                    .dep(format!("b{k}_{j}"));
            }
            if streaming && g > 1 {
                // A running sum, in the same order as one madd over all products.
                let mut prev = products[0].clone();
                for (k, p) in products.iter().enumerate().skip(1) {
                    let id = if k == g - 1 {
                        c.clone()
                    } else {
                        format!("s{i}_{j}_{k}")
                    };
                    b.task(id.as_str(), "madd")
                        .dep(prev.as_str())
                        .dep(p.as_str());
                    prev = id;
                }
            } else {
                b.task(c.as_str(), "madd").deps(products);
            }
            b.task(format!("f{i}_{j}"), "frobenius").dep(c.as_str());
            if all_blocks {
                b.output(c);
            } else {
                b.output(format!("f{i}_{j}"));
            }
        }
    }
    if !all_blocks && g > 0 {
        b.output("c0_0");
    }
    b.build()
}

/// Blocked C = A·B (see the module docs). Outputs: the Frobenius norm of every C block
/// (`f{i}_{j}`) and the sample block `c0_0`, so outputs stay small at any n.
pub fn gemm(n: usize, block: usize) -> DagSpec {
    gemm_build(n, block, false, false)
}

/// [`gemm`] with bounded memory: the tiles made layer by layer along k, and each C block a
/// running sum (`s{i}_{j}_{k}` = `madd(s{i}_{j}_{k-1}, p{i}_{j}_{k}`), the last one being
/// `c{i}_{j}`), so a product is freed as soon as it is added, while the other products of
/// its block are still to come. The same sums in the same order as [`gemm`]: the same
/// outputs, bit for bit. g³ + g²(g − 1) + 3g² tasks.
pub fn gemm_streaming(n: usize, block: usize) -> DagSpec {
    gemm_build(n, block, false, true)
}

/// [`gemm`] with every C block (`c{i}_{j}`) as an output instead of the norms.
pub fn gemm_all_blocks(n: usize, block: usize) -> DagSpec {
    gemm_build(n, block, true, false)
}

/// The full n×n A and B that [`gemm`] multiplies.
pub fn gemm_inputs(n: usize) -> (Matrix, Matrix) {
    (
        linalg::generate(n, n, GEMM_SEED_A, 0, 0),
        linalg::generate(n, n, GEMM_SEED_B, 0, 0),
    )
}

/// The single-node reference: one product of the full matrices.
pub fn gemm_reference(n: usize, threads: Threads) -> Matrix {
    let (a, b) = gemm_inputs(n);
    // Both are n×n, so the product cannot fail.
    linalg::matmul(&a, &b, threads).unwrap_or_else(|_| Matrix::zeros(n, n))
}

/// What [`check_gemm`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmCheck {
    /// C blocks compared entry by entry.
    pub blocks_checked: usize,
    /// ‖C − C_ref‖_F / ‖C_ref‖_F over those blocks.
    pub rel_err: f64,
    /// Block norms (`f{i}_{j}`) compared.
    pub norms_checked: usize,
    /// The largest |‖C_ij‖_F − ‖C_ref,ij‖_F| / ‖C_ref,ij‖_F.
    pub norm_rel_err: f64,
}

/// Checks a [`gemm`] or [`gemm_all_blocks`] run's outputs against the full reference
/// product: every C block among the outputs entry by entry, every block norm against the
/// reference block's, all within [`GEMM_REL_TOL`]. Every output of the DAG must be there.
pub fn check_gemm(
    n: usize,
    block: usize,
    outputs: &[(TaskId, Value)],
    reference: &Matrix,
) -> Result<GemmCheck, String> {
    if reference.shape() != (n, n) {
        return Err(format!(
            "the reference is {}x{}, expected {n}x{n}",
            reference.rows(),
            reference.cols()
        ));
    }
    let t = tiles(n, block);
    let mut check = GemmCheck {
        blocks_checked: 0,
        rel_err: 0.0,
        norms_checked: 0,
        norm_rel_err: 0.0,
    };
    let (mut diff_sq, mut ref_sq) = (0.0f64, 0.0f64);
    for (id, v) in outputs {
        let id = id.as_str();
        let (kind, rest) = id.split_at(1);
        let mut ij = rest.split('_').map(str::parse::<usize>);
        let (Some(Ok(i)), Some(Ok(j)), None) = (ij.next(), ij.next(), ij.next()) else {
            return Err(format!("unexpected output {id}"));
        };
        let (Some(&(r0, rows)), Some(&(c0, cols))) = (t.get(i), t.get(j)) else {
            return Err(format!("output {id} is outside the {}x{0} grid", t.len()));
        };
        let want = reference.sub(r0, c0, rows, cols);
        match kind {
            "c" => {
                let got = Matrix::from_value(v).map_err(|e| format!("output {id}: {e}"))?;
                if got.shape() != want.shape() {
                    return Err(format!(
                        "output {id} is {}x{}, expected {rows}x{cols}",
                        got.rows(),
                        got.cols()
                    ));
                }
                for (x, y) in got.data().iter().zip(want.data()) {
                    diff_sq += (x - y) * (x - y);
                    ref_sq += y * y;
                }
                check.blocks_checked += 1;
            }
            "f" => {
                let Value::Float(f) = v else {
                    return Err(format!("output {id} is {v:?}, expected a float"));
                };
                let w = want.frobenius();
                let e = (f - w).abs() / w.max(f64::MIN_POSITIVE);
                if !below(e, GEMM_REL_TOL) {
                    return Err(format!(
                        "output {id}: norm {f} vs reference {w} (relative error {e:e})"
                    ));
                }
                check.norm_rel_err = check.norm_rel_err.max(e);
                check.norms_checked += 1;
            }
            _ => return Err(format!("unexpected output {id}")),
        }
    }
    let g = t.len();
    // gemm: g² norms and one sample block; gemm_all_blocks: g² blocks.
    let expected_outputs = if check.norms_checked > 0 {
        g * g + 1
    } else {
        g * g
    };
    if outputs.len() != expected_outputs {
        return Err(format!(
            "{} outputs, expected {expected_outputs}",
            outputs.len()
        ));
    }
    check.rel_err = diff_sq.sqrt() / ref_sq.sqrt().max(f64::MIN_POSITIVE);
    if !below(check.rel_err, GEMM_REL_TOL) {
        return Err(format!(
            "‖C − C_ref‖_F / ‖C_ref‖_F = {:e} over {} blocks (bound {GEMM_REL_TOL:e})",
            check.rel_err, check.blocks_checked
        ));
    }
    Ok(check)
}

/// The number of row blocks of [`tsqr`].
pub fn tsqr_blocks(rows: usize, block_rows: usize) -> usize {
    rows.div_ceil(block_rows.max(1)).max(1)
}

/// Tasks in [`tsqr`]: b leaves, b `qr_r`s, b − 1 (`vstack`, `qr_r`) merges, one
/// `svd_values`.
pub fn tsqr_task_count(rows: usize, block_rows: usize) -> usize {
    4 * tsqr_blocks(rows, block_rows) - 1
}

/// Singular values of a rows×cols matrix by TSQR (see the module docs).
pub fn tsqr(rows: usize, cols: usize, block_rows: usize) -> DagSpec {
    let mut b = JobBuilder::new(format!("tsqr-{rows}x{cols}-{block_rows}"));
    let mut level: Vec<String> = Vec::new();
    let row_tiles = if rows == 0 {
        vec![(0, 0)]
    } else {
        tiles(rows, block_rows)
    };
    for (i, &(r0, n)) in row_tiles.iter().enumerate() {
        let leaf = format!("l{i}");
        b.task(leaf.as_str(), "block")
            .arg(n as i64)
            .arg(cols as i64)
            .arg(TSQR_SEED as i64)
            .arg(r0 as i64)
            .arg(0);
        let r = format!("r0_{i}");
        b.task(r.as_str(), "qr_r").dep(leaf);
        level.push(r);
    }
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for (j, pair) in level.chunks(2).enumerate() {
            match pair {
                [x, y] => {
                    let s = format!("s{depth}_{j}");
                    b.task(s.as_str(), "vstack").deps([x.as_str(), y.as_str()]);
                    let r = format!("r{depth}_{j}");
                    b.task(r.as_str(), "qr_r").dep(s);
                    next.push(r);
                }
                [x] => next.push(x.clone()),
                _ => {}
            }
        }
        level = next;
    }
    let root = level.pop().unwrap_or_default();
    b.task("sv", "svd_values").dep(root);
    b.output("sv");
    b.build()
}

/// The single-node reference: the singular values of the full matrix (one SVD).
pub fn tsqr_reference(rows: usize, cols: usize, threads: Threads) -> Result<Vec<f64>, String> {
    let a = linalg::generate(rows, cols, TSQR_SEED, 0, 0);
    linalg::singular_values(&a, threads).map_err(|e| e.message)
}

/// Checks a [`tsqr`] run's `sv` output against the reference: the same count, and
/// max_i |s_i − s_ref,i| / s_ref,i below [`TSQR_REL_TOL`]. Returns that error.
pub fn check_tsqr(outputs: &[(TaskId, Value)], reference: &[f64]) -> Result<f64, String> {
    let Some((_, v)) = outputs.iter().find(|(id, _)| id.as_str() == "sv") else {
        return Err("no sv output".into());
    };
    let Value::Array(got) = v else {
        return Err(format!("sv is {v:?}, expected an array of floats"));
    };
    if got.len() != reference.len() {
        return Err(format!(
            "{} singular values, expected {}",
            got.len(),
            reference.len()
        ));
    }
    let mut worst = 0.0f64;
    for (i, (g, r)) in got.iter().zip(reference).enumerate() {
        let Value::Float(g) = g else {
            return Err(format!("sv[{i}] is {g:?}, expected a float"));
        };
        let e = (g - r).abs() / r.abs().max(f64::MIN_POSITIVE);
        if !below(e, TSQR_REL_TOL) {
            return Err(format!(
                "sv[{i}] = {g} vs reference {r} (relative error {e:e}, bound {TSQR_REL_TOL:e})"
            ));
        }
        worst = worst.max(e);
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_counts_match() {
        for (n, block) in [(256, 64), (100, 30), (64, 64), (5, 1)] {
            assert_eq!(gemm(n, block).tasks.len(), gemm_task_count(n, block));
            assert_eq!(
                gemm_all_blocks(n, block).tasks.len(),
                gemm_task_count(n, block)
            );
        }
        assert_eq!(gemm_task_count(4096, 128), 36_864);
        for (rows, br) in [(4000, 500), (200_000, 10_000), (10, 3), (7, 7), (0, 5)] {
            assert_eq!(tsqr(rows, 4, br).tasks.len(), tsqr_task_count(rows, br));
        }
        assert_eq!(tsqr_task_count(200_000, 10_000), 79);
    }

    #[test]
    fn tiles_cover() {
        assert_eq!(tiles(10, 4), [(0, 4), (4, 4), (8, 2)]);
        assert_eq!(tiles(8, 4), [(0, 4), (4, 4)]);
        assert!(tiles(0, 4).is_empty());
    }

    #[test]
    fn gemm_outputs_are_norms_and_one_sample() {
        let spec = gemm(256, 64);
        let outs = spec.outputs.as_ref().unwrap();
        assert_eq!(outs.len(), 17);
        assert!(outs.iter().any(|o| o.as_str() == "c0_0"));
        assert_eq!(gemm_all_blocks(256, 64).outputs.unwrap().len(), 16);
    }
}
