//! SCAFFOLD: sampler helper writes this.
