//! What this machine can give jobs that declare `resources`: its CPUs and the memory
//! available when the run starts, read once through sysinfo.

use sysinfo::{MemoryRefreshKind, RefreshKind, System};

use crate::model::Resources;

/// The CPUs and available memory of this machine.
pub fn capacity() -> Resources {
    // Without a readable /proc/meminfo, memory is not limited rather than zero.
    let memory = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .map_or(u64::MAX, |system| system.available_memory());
    #[allow(clippy::cast_precision_loss)]
    let cpu = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) as f64;
    Resources { cpu, memory }
}
