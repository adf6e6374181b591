//! Random values from the host's `wasi:random` source, for identifiers that
//! must not collide between concurrent writers (e.g. Azure block ids).

/// A random `u64` from the host's cryptographically secure source.
pub fn random_u64() -> u64 {
    wasip2::random::random::get_random_u64()
}
