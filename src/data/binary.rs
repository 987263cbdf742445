//! The HiAI calibration data file: five little-endian 32-bit integers — magic 510, count,
//! channels, height, width — followed by count·channels·height·width float32 values.

use std::path::Path;

use super::DataError;
use crate::ir::{MAX_ELEMENTS, Tensor};

/// The magic number of a HiAI BINARY calibration file.
pub const MAGIC: i32 = 510;

/// Reads a BINARY file as a `[count, channels, height, width]` float32 tensor.
pub fn read_binary(path: &Path) -> Result<Tensor, DataError> {
    let bad = |reason: String| DataError::File {
        path: path.display().to_string(),
        reason,
    };
    let bytes = crate::util::fs::read_input(path, crate::util::budget::limit())
        .map_err(|e| bad(e.to_string()))?;
    parse_binary(&bytes).map_err(bad)
}

/// Parses the bytes of a BINARY file.
pub fn parse_binary(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 20 {
        return Err(format!(
            "{} bytes: too short for the 20-byte HiAI header",
            bytes.len()
        ));
    }
    let h: Vec<i32> = bytes[..20]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if h[0] != MAGIC {
        return Err(format!(
            "magic number {} instead of {MAGIC}: not a HiAI BINARY calibration file",
            h[0]
        ));
    }
    if h[1..].iter().any(|&d| d <= 0) {
        return Err(format!(
            "header count/channels/height/width {:?} must all be positive",
            &h[1..]
        ));
    }
    let dims: Vec<usize> = h[1..].iter().map(|&d| d as usize).collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    let n = n.ok_or_else(|| format!("header declares {:?}, too many values", dims))?;
    let payload = &bytes[20..];
    if payload.len() != n * 4 {
        return Err(format!(
            "header declares {:?} = {n} float32 values ({} bytes), the payload has {} bytes",
            dims,
            n * 4,
            payload.len()
        ));
    }
    let data = payload
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Ok(Tensor::from_f32(&dims, data))
}

/// Serializes a `[count, c, h, w]` float32 tensor as a BINARY file's bytes.
pub fn binary_bytes(t: &Tensor) -> Option<Vec<u8>> {
    let a = t.as_f32()?;
    if a.ndim() != 4 {
        return None;
    }
    let mut out = Vec::with_capacity(20 + a.len() * 4);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    for &d in a.shape() {
        out.extend_from_slice(&(d as i32).to_le_bytes());
    }
    a.iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let t = Tensor::from_f32(&[2, 1, 2, 2], (0..8).map(|v| v as f32).collect());
        let b = binary_bytes(&t).unwrap();
        assert_eq!(parse_binary(&b).unwrap(), t);
        let mut wrong = b.clone();
        wrong[0] = 0;
        assert!(parse_binary(&wrong).unwrap_err().contains("magic"));
        assert!(
            parse_binary(&b[..b.len() - 4])
                .unwrap_err()
                .contains("payload")
        );
        assert!(parse_binary(&b[..10]).unwrap_err().contains("too short"));
    }
}
