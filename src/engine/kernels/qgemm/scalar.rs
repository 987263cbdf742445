//! The portable integer microkernel: exact i32 multiply-adds.

/// `tile[r * nr + j] = Σ_g Σ_t a[g][r] byte t · b[g][j][t]` (`a`: `[k4][mr]` words of four
/// s8, `b`: `[k4][nr][4]` u8).
pub(super) fn kernel(mr: usize, nr: usize, k4: usize, a: &[i32], b: &[u8], tile: &mut [i32]) {
    let tile = &mut tile[..mr * nr];
    tile.fill(0);
    for g in 0..k4 {
        let bg = &b[g * nr * 4..(g + 1) * nr * 4];
        for r in 0..mr {
            let w = a[g * mr + r].to_le_bytes().map(|x| x as i8 as i32);
            let row = &mut tile[r * nr..(r + 1) * nr];
            for (acc, bj) in row.iter_mut().zip(bg.chunks_exact(4)) {
                *acc += w[0] * bj[0] as i32
                    + w[1] * bj[1] as i32
                    + w[2] * bj[2] as i32
                    + w[3] * bj[3] as i32;
            }
        }
    }
}
