//! What this machine can give jobs that declare `resources`: its CPUs and the memory
//! available when the run starts, read once through sysinfo.

use sysinfo::{MemoryRefreshKind, RefreshKind, System};

use crate::model::{Pipeline, Resources};
use crate::selection::Disposition;

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

/// What the run can give its jobs: this machine's [`capacity`] when a job asks for
/// resources (reading it costs a few milliseconds), else no limit to check.
pub fn for_pipeline(pipeline: &Pipeline) -> Resources {
    if pipeline
        .jobs
        .iter()
        .any(|j| j.resources != Resources::default())
    {
        capacity()
    } else {
        Resources::default()
    }
}

/// Each job the run would start that asks for more than `capacity`, which would wait for
/// ever, said in words.
pub fn too_big(
    pipeline: &Pipeline,
    dispositions: &[Disposition],
    capacity: Resources,
) -> Vec<String> {
    let mut problems = Vec::new();
    // A job the run skips asks for nothing: one meant for a bigger machine can be skipped.
    let runs = |i: usize| matches!(dispositions.get(i), Some(Disposition::Run));
    for job in (pipeline.jobs.iter().enumerate()).filter_map(|(i, job)| runs(i).then_some(job)) {
        if job.resources.cpu > capacity.cpu {
            problems.push(format!(
                "job `{}` needs {} CPUs; this machine has {}",
                job.id, job.resources.cpu, capacity.cpu
            ));
        }
        if job.resources.memory > capacity.memory {
            problems.push(format!(
                "job `{}` needs {} MiB of memory; {} MiB are available",
                job.id,
                job.resources.memory >> 20,
                capacity.memory >> 20
            ));
        }
    }
    problems
}
