//! The geometry of a sliding-window kernel (convolution): per spatial axis, where each
//! output position reads, `in = out · stride + k · dilation − pad_begin`, and its 2-D
//! view for the kernels that work on planes.

/// Where every output position of one axis reads: `in = out * stride + k * dilation - pad_begin`
/// (Conv) or `out = in * stride + k * dilation - pad_begin` (ConvTranspose).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub input: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Signed: an explicit ConvTranspose `output_shape` may crop less than nothing.
    pub pad_begin: Vec<isize>,
    pub output: Vec<usize>,
}

/// A 2-D convolution over one group's input `[C, H, W]` (1-D maps to H = 1).
#[derive(Clone, Copy, Debug)]
pub struct Plane {
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: isize,
    pub pl: isize,
    pub oh: usize,
    pub ow: usize,
}

impl Plane {
    /// The 2-D view of a 1-D or 2-D geometry (`None` for 3-D and up).
    pub fn new(g: &Geometry) -> Option<Plane> {
        let at = |v: &[usize], i: usize| v[v.len() - 2 + i];
        match g.input.len() {
            1 => Some(Plane {
                h: 1,
                w: g.input[0],
                kh: 1,
                kw: g.kernel[0],
                sh: 1,
                sw: g.strides[0],
                dh: 1,
                dw: g.dilations[0],
                pt: 0,
                pl: g.pad_begin[0],
                oh: 1,
                ow: g.output[0],
            }),
            2 => Some(Plane {
                h: at(&g.input, 0),
                w: at(&g.input, 1),
                kh: at(&g.kernel, 0),
                kw: at(&g.kernel, 1),
                sh: at(&g.strides, 0),
                sw: at(&g.strides, 1),
                dh: at(&g.dilations, 0),
                dw: at(&g.dilations, 1),
                pt: g.pad_begin[0],
                pl: g.pad_begin[1],
                oh: at(&g.output, 0),
                ow: at(&g.output, 1),
            }),
            _ => None,
        }
    }

    /// Output columns `[lo, hi)` whose tap `kx` lands inside the input row.
    pub fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let off = (kx * self.dw) as isize - self.pl; // ix = ox * sw + off
        let sw = self.sw as isize;
        let lo = if off >= 0 { 0 } else { (-off + sw - 1) / sw };
        let last = self.w as isize - 1 - off;
        let hi = if last < 0 { 0 } else { last / sw + 1 };
        let lo = (lo as usize).min(self.ow);
        (lo, (hi as usize).clamp(lo, self.ow))
    }
}
