//! placeholder (simulated filesystem: being written)
