use std::fmt;

/// Where a message's payload lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemorySpace {
    /// Host memory.
    Cpu,
    /// GPU memory (textures or storage buffers).
    Gpu,
}

impl MemorySpace {
    /// `"cpu"` or `"gpu"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySpace::Cpu => "cpu",
            MemorySpace::Gpu => "gpu",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            MemorySpace::Cpu => 1,
            MemorySpace::Gpu => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(MemorySpace::Cpu),
            2 => Some(MemorySpace::Gpu),
            _ => None,
        }
    }
}

impl fmt::Display for MemorySpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The memory spaces a port can produce or accept, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemoryCaps {
    spaces: [Option<MemorySpace>; 2],
}

impl MemoryCaps {
    /// `[cpu]`.
    pub const CPU: Self = Self {
        spaces: [Some(MemorySpace::Cpu), None],
    };
    /// `[gpu]`.
    pub const GPU: Self = Self {
        spaces: [Some(MemorySpace::Gpu), None],
    };
    /// `[cpu, gpu]`: either, CPU preferred.
    pub const CPU_GPU: Self = Self {
        spaces: [Some(MemorySpace::Cpu), Some(MemorySpace::Gpu)],
    };
    /// `[gpu, cpu]`: either, GPU preferred.
    pub const GPU_CPU: Self = Self {
        spaces: [Some(MemorySpace::Gpu), Some(MemorySpace::Cpu)],
    };

    /// Caps from a preference list; duplicates are ignored. `None` if the list is empty.
    pub fn new(spaces: &[MemorySpace]) -> Option<Self> {
        let mut out = [None, None];
        let mut n = 0;
        for &space in spaces {
            if !out[..n].contains(&Some(space)) {
                out[n] = Some(space);
                n += 1;
            }
        }
        (n > 0).then_some(Self { spaces: out })
    }

    /// The spaces in order of preference.
    pub fn iter(&self) -> impl Iterator<Item = MemorySpace> + '_ {
        self.spaces.iter().flatten().copied()
    }

    /// The most preferred space.
    pub fn preferred(&self) -> MemorySpace {
        self.spaces[0].unwrap_or(MemorySpace::Cpu)
    }

    /// Whether `space` is accepted.
    pub fn contains(&self, space: MemorySpace) -> bool {
        self.iter().any(|s| s == space)
    }

    /// The first space of `self` (in `self`'s order) that `other` also accepts.
    pub fn negotiate(&self, other: &MemoryCaps) -> Option<MemorySpace> {
        self.iter().find(|&s| other.contains(s))
    }
}

impl fmt::Display for MemoryCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, space) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(space.as_str())?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_callers_order() {
        assert_eq!(
            MemoryCaps::GPU_CPU.negotiate(&MemoryCaps::CPU_GPU),
            Some(MemorySpace::Gpu)
        );
        assert_eq!(
            MemoryCaps::CPU_GPU.negotiate(&MemoryCaps::GPU),
            Some(MemorySpace::Gpu)
        );
        assert_eq!(MemoryCaps::CPU.negotiate(&MemoryCaps::GPU), None);
        assert_eq!(MemoryCaps::CPU_GPU.to_string(), "[cpu, gpu]");
        assert_eq!(
            MemoryCaps::new(&[MemorySpace::Gpu, MemorySpace::Gpu]),
            Some(MemoryCaps::GPU)
        );
        assert_eq!(MemoryCaps::new(&[]), None);
    }
}
