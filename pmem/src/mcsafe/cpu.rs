//! What this CPU offers the copy and flush routines, read once by CPUID and cached.
//!
//! INVARIANT: [`cpu_features`] never changes after its first call; the flush instruction it names
//! exists on this CPU, and `avx2` is true only when the OS saves the YMM state too.

use std::arch::x86_64::{__cpuid, __cpuid_count};
use std::sync::OnceLock;

/// Which cache-line write-back instruction the flush loop uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushInsn {
    /// `clwb`: write back, keep the line.
    Clwb,
    /// `clflushopt`: write back and evict, weakly ordered.
    Clflushopt,
    /// `clflush`: write back and evict, strongly ordered.
    Clflush,
}

impl FlushInsn {
    /// The routine index `call::flush` takes.
    pub(crate) fn index(self) -> u8 {
        match self {
            FlushInsn::Clwb => 0,
            FlushInsn::Clflushopt => 1,
            FlushInsn::Clflush => 2,
        }
    }
}

/// The CPU facts the device layer depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    /// The best write-back instruction: clwb, else clflushopt, else clflush.
    pub flush_insn: FlushInsn,
    /// AVX2 usable (CPU and OS): the vector copy exists.
    pub avx2: bool,
    /// Enhanced `rep movsb`.
    pub erms: bool,
    /// Fast short `rep movsb`.
    pub fsrm: bool,
    /// An Intel part where Linux uses its "fragile" copy (family 6, model 0x55: Skylake-SP,
    /// Cascade Lake, Cooper Lake): poison consumed by a fast-string load may not be recoverable.
    pub fragile: bool,
    /// CPUID family (with the extended family folded in).
    pub family: u32,
    /// CPUID model (with the extended model folded in).
    pub model: u32,
}

/// The features of this CPU (CPUID is read once; later calls are a load).
pub fn cpu_features() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(detect)
}

/// The two facts the copy dispatch needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CopyCpu {
    /// The AVX2 vector copy is usable.
    pub avx2: bool,
    /// The fragile copy is required.
    pub fragile: bool,
}

impl CopyCpu {
    /// From [`cpu_features`].
    pub(crate) fn detect() -> Self {
        let f = cpu_features();
        CopyCpu { avx2: f.avx2, fragile: f.fragile }
    }
}

fn detect() -> CpuFeatures {
    let leaf0 = __cpuid(0);
    let max_leaf = leaf0.eax;
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&leaf0.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&leaf0.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&leaf0.ecx.to_le_bytes());
    let leaf1 = __cpuid(1);
    let (ebx7, edx7) = if max_leaf >= 7 {
        let leaf7 = __cpuid_count(7, 0);
        (leaf7.ebx, leaf7.edx)
    } else {
        (0, 0)
    };
    let (family, model) = family_model(leaf1.eax);
    let clflush = leaf1.edx & (1 << 19) != 0;
    let clflushopt = ebx7 & (1 << 23) != 0;
    let clwb = ebx7 & (1 << 24) != 0;
    debug_assert!(clflush, "x86-64 without clflush");
    CpuFeatures {
        flush_insn: choose_flush(clwb, clflushopt),
        avx2: std::arch::is_x86_feature_detected!("avx2"),
        erms: ebx7 & (1 << 9) != 0,
        fsrm: edx7 & (1 << 4) != 0,
        fragile: is_fragile(&vendor, family, model),
        family,
        model,
    }
}

fn choose_flush(clwb: bool, clflushopt: bool) -> FlushInsn {
    if clwb {
        FlushInsn::Clwb
    } else if clflushopt {
        FlushInsn::Clflushopt
    } else {
        FlushInsn::Clflush
    }
}

fn family_model(eax: u32) -> (u32, u32) {
    let base_family = (eax >> 8) & 0xf;
    let base_model = (eax >> 4) & 0xf;
    let family = if base_family == 0xf { base_family + ((eax >> 20) & 0xff) } else { base_family };
    let model = if base_family == 0x6 || base_family == 0xf {
        base_model | (((eax >> 16) & 0xf) << 4)
    } else {
        base_model
    };
    (family, model)
}

/// The Intel server parts where Linux's `copy_mc` uses its fragile 8-byte loop.
fn is_fragile(vendor: &[u8; 12], family: u32, model: u32) -> bool {
    vendor == b"GenuineIntel" && family == 6 && model == 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_model_decode() {
        // Cascade Lake: family 6, model 0x55 (extended model 5, model 5).
        assert_eq!(family_model(0x0005_0657), (6, 0x55));
        // Zen 4: base family 0xf + extended 0xa = 0x19, model 0x11.
        assert_eq!(family_model(0x00a1_0f11), (0x19, 0x11));
    }

    #[test]
    fn fragile_only_on_intel_model_0x55() {
        assert!(is_fragile(b"GenuineIntel", 6, 0x55));
        assert!(!is_fragile(b"GenuineIntel", 6, 0x6a));
        assert!(!is_fragile(b"AuthenticAMD", 6, 0x55));
    }

    #[test]
    fn flush_preference_order() {
        assert_eq!(choose_flush(true, true), FlushInsn::Clwb);
        assert_eq!(choose_flush(false, true), FlushInsn::Clflushopt);
        assert_eq!(choose_flush(false, false), FlushInsn::Clflush);
    }

    #[test]
    fn this_machine_is_detected() {
        let f = cpu_features();
        assert_eq!(f, cpu_features());
        assert_eq!(CopyCpu::detect(), CopyCpu { avx2: f.avx2, fragile: f.fragile });
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let has = |flag: &str| cpuinfo.split_whitespace().any(|w| w == flag);
        assert_eq!(f.avx2, has("avx2"));
        assert_eq!(f.erms, has("erms"));
        assert_eq!(f.flush_insn == FlushInsn::Clwb, has("clwb"));
    }
}
