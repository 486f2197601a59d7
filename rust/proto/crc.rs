// SPDX-License-Identifier: GPL-2.0
//! CRC32C as NVMe/TCP digests use it.
//!
//! The protocol core does not carry its own CRC table: the kernel module
//! passes the kernel's `crc32c()` in through [`Crc32c`], host tests a
//! reference implementation.

/// A CRC32C engine: `update` continues a raw (non-inverted) CRC state.
pub trait Crc32c {
    /// Continues `crc` over `data`, like the kernel's `crc32c(crc, data, len)`.
    fn update(&self, crc: u32, data: &[u8]) -> u32;
}

/// The state a digest starts from (`~0`).
pub const SEED: u32 = !0;

/// The digest value for a finished raw state, as sent on the wire (little endian).
#[inline]
pub fn finish(crc: u32) -> [u8; 4] {
    (!crc).to_le_bytes()
}

/// The digest of one buffer.
pub fn digest<C: Crc32c + ?Sized>(c: &C, data: &[u8]) -> [u8; 4] {
    finish(c.update(SEED, data))
}

/// A bitwise CRC32C for host tests only (the module uses the kernel's).
#[cfg(test)]
pub struct SoftCrc32c;

#[cfg(test)]
impl Crc32c for SoftCrc32c {
    fn update(&self, mut crc: u32, data: &[u8]) -> u32 {
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
            }
        }
        crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 3720, B.4 check value of "123456789".
        assert_eq!(u32::from_le_bytes(digest(&SoftCrc32c, b"123456789")), 0xe306_9283);
    }

    #[test]
    fn split_update_equals_whole() {
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = SoftCrc32c.update(SEED, &data);
        let split = SoftCrc32c.update(SoftCrc32c.update(SEED, &data[..333]), &data[333..]);
        assert_eq!(whole, split);
    }
}
