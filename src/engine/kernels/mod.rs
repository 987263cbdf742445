//! Compute kernels shared by the op families, each written for every ISA the engine
//! dispatches to at run time (`isa`): the packed GEMM (`gemm`), im2col packers
//! (`im2col`), direct depthwise convolution (`depthwise`), fused element-wise
//! epilogues (`epilogue`), the element-wise loop helpers (`loops`) and the
//! transcendental functions they use (`math`), and the integer GEMM of quantized layers
//! (`qgemm`). Ops call kernels; kernels never call ops.

pub mod depthwise;
pub mod epilogue;
pub mod gemm;
pub mod im2col;
pub mod isa;
pub mod loops;
pub mod math;
pub mod qgemm;
pub mod window;

pub use isa::{ISA_ENV, Isa, IsaError, cpu_features, default_isa, isa_from_env, with_isa};
